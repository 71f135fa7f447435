/* mkdirs.c: see mkdirs.h. */
#define _GNU_SOURCE 1
#include "mkdirs.h"

#include <errno.h>    /* errno, EEXIST, ELOOP, ENAMETOOLONG, ENOENT */
#include <limits.h>   /* PATH_MAX */
#include <stdio.h>    /* snprintf */
#include <string.h>   /* strlen, strrchr, memcpy */
#include <sys/stat.h> /* mkdir, chmod, stat, lstat */
#include <unistd.h>   /* readlink */

#define MAX_LINKS 40 /* the kernel's own limit on one resolution */

static int make_dirs_following(const char *path, mode_t mode, int links);

/* What the dangling symlink `path` names, made as a directory: an image's /root may be a link
 * to a directory it does not have (Docker makes the target too). This runs inside the sandbox,
 * so the link can lead only into the sandbox's own tree. */
static int make_link_target(const char *path, mode_t mode, int links)
{
  char target[PATH_MAX], full[PATH_MAX];
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n < 0)
    return -1;
  target[n] = '\0';
  if (links >= MAX_LINKS) {
    errno = ELOOP;
    return -1;
  }
  if (target[0] == '/') {
    memcpy(full, target, (size_t)n + 1);
  } else {
    const char *slash = strrchr(path, '/');
    int dir = slash == NULL ? 0 : (int)(slash - path);
    if (snprintf(full, sizeof full, "%.*s/%s", dir, path, target) >= (int)sizeof full) {
      errno = ENAMETOOLONG;
      return -1;
    }
  }
  return make_dirs_following(full, mode, links + 1) < 0 ? -1 : 0;
}

/* Makes one directory; 1 if it was made here, 0 if it was already a directory. */
static int make_one(const char *path, mode_t mode, int links)
{
  struct stat st;
  if (mkdir(path, mode) == 0)
    return chmod(path, mode) == 0 ? 1 : -1; /* past the umask */
  if (errno != EEXIST)
    return -1;
  if (stat(path, &st) < 0)
    return errno == ENOENT && lstat(path, &st) == 0 && S_ISLNK(st.st_mode) ? make_link_target(path, mode, links) : -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

static int make_dirs_following(const char *path, mode_t mode, int links)
{
  char buf[PATH_MAX];
  size_t len = strlen(path);
  if (len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i < len; i++) {
    if (buf[i] != '/')
      continue;
    buf[i] = '\0';
    int made = make_one(buf, 0755, links);
    buf[i] = '/';
    if (made < 0)
      return -1;
  }
  return make_one(buf, mode, links) < 0 ? -1 : 0;
}

int make_dirs(const char *path, mode_t mode)
{
  return make_dirs_following(path, mode, 0);
}
