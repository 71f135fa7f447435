/* rmtree.c: removing what a sandbox left behind.
 *
 * The tree was written by untrusted code, so: never follow a symlink (every
 * open is O_NOFOLLOW relative to a directory fd), never leave the mount the
 * tree lives on, undo "chmod 000" on directories, and survive any depth.
 * Depth is why only one directory is open at a time: going down opens the
 * child, going up opens ".." and checks it is the directory we came from.
 * A rescan after each return picks up where the parent left off (entries
 * already removed are gone), so no positions or names are kept per level.
 * Another cleanup may be removing the same tree (a killed process's orphaned
 * sandbox-rmtree, a collection): what vanishes meanwhile counts as removed. */
#define _GNU_SOURCE 1
#include "rmtree.h"

#include <dirent.h>   /* fdopendir, readdir, rewinddir, closedir, DT_* */
#include <errno.h>    /* errno */
#include <fcntl.h>    /* open, openat, O_*, AT_* */
#include <stdlib.h>   /* realloc, free */
#include <string.h>   /* strcmp */
#include <sys/stat.h> /* lstat, statx, fchmod, fchmodat */
#include <unistd.h>   /* unlink, unlinkat, close */

#include "util.h"

struct dir_id {
  uint32_t dev_major, dev_minor;
  uint64_t ino, mnt_id;
};

static int dir_id(int fd, struct dir_id *id)
{
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &stx) < 0)
    return -1;
  *id = (struct dir_id){stx.stx_dev_major, stx.stx_dev_minor, stx.stx_ino, stx.stx_mnt_id};
  return 0;
}

static bool same_dir(const struct dir_id *a, const struct dir_id *b)
{
  return a->dev_major == b->dev_major && a->dev_minor == b->dev_minor && a->ino == b->ino;
}

/* Opens directory name under dfd, making it readable first if need be. */
static int open_dir(int dfd, const char *name)
{
  int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int fd = openat(dfd, name, flags);
  if (fd < 0 && errno == EACCES && fchmodat(dfd, name, 0700, 0) == 0)
    fd = openat(dfd, name, flags);
  return fd;
}

/* Removes one entry of the directory dfd.  Returns 0 when it is gone, 1 when
 * it is a non-empty directory to descend into, -1 on failure. */
static int remove_entry(int dfd, const char *name, unsigned char type)
{
  for (int attempt = 0;; attempt++) {
    int r = -1;
    if (type != DT_DIR) {
      r = unlinkat(dfd, name, 0);
      if (r < 0 && errno == EISDIR) /* DT_UNKNOWN from the filesystem */
        type = DT_DIR;
    }
    if (type == DT_DIR) {
      r = unlinkat(dfd, name, AT_REMOVEDIR);
      if (r < 0 && (errno == ENOTEMPTY || errno == EEXIST))
        return 1;
    }
    if (r == 0 || errno == ENOENT)
      return 0;
    /* Removing needs write and search permission on the directory. */
    if (errno != EACCES || attempt > 0 || fchmod(dfd, 0700) < 0)
      return -1;
  }
}

int rmtree(const char *path)
{
  return rmtree_at(AT_FDCWD, path);
}

int rmtree_at(int dfd, const char *path)
{
  struct stat st;
  if (fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : (pwarnf("cleanup %s", path), -1);
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dfd, path, 0) < 0 && errno != ENOENT)
      return pwarnf("cleanup %s", path), -1;
    return 0;
  }

  int fd = open_dir(dfd, path);
  if (fd < 0 && errno == ENOENT)
    return 0; /* removed meanwhile, by another cleanup */
  struct dir_id root;
  if (fd < 0 || dir_id(fd, &root) < 0) {
    pwarnf("cleanup %s", path);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    pwarnf("cleanup %s", path);
    close(fd);
    return -1;
  }

  struct dir_id *up = NULL; /* identities of the directories above d */
  size_t depth = 0, cap = 0;
  const char *what = NULL, *name = NULL;
  for (;;) {
    bool seen = false;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        continue;
      seen = true;
      name = de->d_name;
      int r = remove_entry(dirfd(d), name, de->d_type);
      if (r < 0) {
        what = "remove";
        goto fail;
      }
      if (r == 0)
        continue;

      /* Down one level. */
      if (depth == cap) {
        size_t ncap = cap ? cap * 2 : 64;
        struct dir_id *n = realloc(up, ncap * sizeof *n);
        if (n == NULL) {
          what = "descend into";
          goto fail;
        }
        up = n;
        cap = ncap;
      }
      struct dir_id here, child;
      int cfd = dir_id(dirfd(d), &here) < 0 ? -1 : open_dir(dirfd(d), name);
      if (cfd < 0 && errno == ENOENT)
        continue; /* removed meanwhile, by another cleanup */
      if (cfd < 0 || dir_id(cfd, &child) < 0) {
        what = "open";
        if (cfd >= 0)
          close(cfd);
        goto fail;
      }
      if (child.mnt_id != root.mnt_id) {
        close(cfd);
        errno = EXDEV;
        what = "not crossing into the mount at";
        goto fail;
      }
      DIR *cd = fdopendir(cfd);
      if (cd == NULL) {
        close(cfd);
        what = "open";
        goto fail;
      }
      closedir(d);
      d = cd;
      up[depth++] = here;
      break;
    }
    if (de != NULL)
      continue; /* went down */
    if (errno == ENOENT) {
      seen = false; /* this directory was removed meanwhile, by another cleanup: it is empty */
    } else if (errno != 0) {
      what = "read";
      name = ".";
      goto fail;
    }
    if (seen) {
      /* Removing while reading may skip entries: read again until empty. */
      rewinddir(d);
      continue;
    }
    if (depth == 0)
      break;

    /* Empty: up one level.  The parent's rescan removes this directory. */
    struct dir_id parent;
    int pfd = openat(dirfd(d), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    name = "..";
    if (pfd < 0 || dir_id(pfd, &parent) < 0) {
      what = "open";
      if (pfd >= 0)
        close(pfd);
      goto fail;
    }
    if (!same_dir(&parent, &up[depth - 1])) {
      close(pfd);
      errno = ESTALE;
      what = "directory moved during removal:";
      goto fail;
    }
    DIR *pd = fdopendir(pfd);
    if (pd == NULL) {
      close(pfd);
      what = "open";
      goto fail;
    }
    closedir(d);
    d = pd;
    depth--;
  }
  closedir(d);
  free(up);
  if (unlinkat(dfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return pwarnf("cleanup %s", path), -1;
  return 0;

fail:
  pwarnf("cleanup %s: %s %s", path, what, name);
  closedir(d);
  free(up);
  return -1;
}
