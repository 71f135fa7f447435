/* stage.c: a private mount namespace that makes host paths reachable for an
 * unprivileged sandbox identity.
 *
 * A root caller may keep images and init under e.g. /root, which uid 100000
 * cannot traverse.  Bind-mounting them onto a tmpfs in a directory it can
 * traverse, in a mount namespace only the runner (bwrap) sees, gives bwrap
 * paths it can open without changing anything on the host. */
#define _GNU_SOURCE 1
#include "stage.h"

#include <errno.h>     /* errno */
#include <fcntl.h>     /* open, openat, O_* */
#include <limits.h>    /* PATH_MAX */
#include <sched.h>     /* unshare, CLONE_NEWNS */
#include <stdbool.h>   /* bool */
#include <stdio.h>     /* snprintf */
#include <string.h>    /* strcmp */
#include <sys/mount.h> /* mount, MS_* */
#include <sys/stat.h>  /* stat, mkdirat, S_ISDIR */
#include <unistd.h>    /* close, fchownat */

#include "util.h"

static int fail(const char *what, const char *path)
{
  int err = errno;
  msg(err, "%s %s", what, path);
  errno = err;
  return -1;
}

/* The staged mount is the directory the host opened, and runs nothing setuid
 * and opens no device. */
static int check_volume(const struct stage_bind *b, const char *target)
{
  struct stat st;
  if (lstat(target, &st) < 0)
    return fail("stat", target);
  if (!S_ISDIR(st.st_mode) || st.st_dev != b->dev || st.st_ino != b->ino) {
    errno = ESTALE;
    return fail("volume changed since it was opened (a swapped symlink?):", b->src);
  }
  if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) < 0)
    return fail("remount nosuid,nodev", b->src);
  return 0;
}

int stage_mounts(const char *dir, const struct stage_bind *binds, size_t nbinds)
{
  if (unshare(CLONE_NEWNS) < 0)
    return fail("unshare", "mount namespace");
  /* Slave: nothing mounted here propagates back to the host, while host
   * unmounts still propagate in, so this namespace does not pin them. */
  if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
    return fail("make slave", "/");
  /* Only mount points live here; the size just caps what could be written.
   * A stage in the sandbox's directory (an unprivileged caller's) is made here. */
  if (mkdir(dir, 0700) < 0 && errno != EEXIST)
    return fail("mkdir", dir);
  if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k,nr_inodes=4096") < 0)
    return fail("mount tmpfs on", dir);
  int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return fail("open", dir);
  for (size_t i = 0; i < nbinds; i++) {
    const struct stage_bind *b = &binds[i];
    char target[PATH_MAX];
    if (snprintf(target, sizeof target, "%s/%s", dir, b->name) >= (int)sizeof target) {
      errno = ENAMETOOLONG;
      return fail("stage", b->name);
    }
    struct stat st;
    if (stat(b->src, &st) < 0)
      return fail("stat", b->src);
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(dfd, b->name, 0755) < 0)
        return fail("mkdir", target);
    } else {
      int fd = openat(dfd, b->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0)
        return fail("create", target);
      close(fd);
    }
    if (mount(b->src, target, NULL, MS_BIND | MS_REC, NULL) < 0)
      return fail("bind mount", b->src);
    if (b->checked && check_volume(b, target) < 0)
      return -1;
  }
  close(dfd);
  return 0;
}

/* The host image's sized root holds /tmp, as under bwrap and nsjail (one budget):
 * runsc binds this directory there rather than mounting a tmpfs of its own. */
static int make_tmp(const char *root)
{
  int fd = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  struct stat st;
  bool ok = fd >= 0 && fstat(fd, &st) == 0 && mkdirat(fd, STAGE_ROOT_TMP, 0700) == 0 &&
      fchownat(fd, STAGE_ROOT_TMP, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) == 0 &&
      fchmodat(fd, STAGE_ROOT_TMP, 01777, 0) == 0;
  int err = errno;
  if (fd >= 0)
    close(fd);
  errno = err;
  return ok ? 0 : fail("mkdir /tmp in", root);
}

int stage_root(const char *dir, const char *fstype, const char *data)
{
  char target[PATH_MAX];
  if (snprintf(target, sizeof target, "%s/" STAGE_OVERLAY_NAME, dir) >= (int)sizeof target) {
    errno = ENAMETOOLONG;
    return fail("stage", STAGE_OVERLAY_NAME);
  }
  if (mkdir(target, 0755) < 0)
    return fail("mkdir", target);
  if (mount(fstype, target, fstype, MS_NOSUID | MS_NODEV, data) < 0)
    return fail(fstype, target);
  return strcmp(fstype, "tmpfs") == 0 ? make_tmp(target) : 0;
}
