/* mkdirs.c: see mkdirs.h. */
#define _GNU_SOURCE 1
#include "mkdirs.h"

#include <errno.h>    /* errno, EEXIST, ENAMETOOLONG */
#include <limits.h>   /* PATH_MAX */
#include <string.h>   /* strlen, memcpy */
#include <sys/stat.h> /* mkdir, chmod, stat */

/* Makes one directory; 1 if it was made here, 0 if it was already a directory. */
static int make_one(const char *path, mode_t mode)
{
  struct stat st;
  if (mkdir(path, mode) == 0)
    return chmod(path, mode) == 0 ? 1 : -1; /* past the umask */
  if (errno != EEXIST)
    return -1;
  if (stat(path, &st) < 0)
    return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

int make_dirs(const char *path, mode_t mode)
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
    int made = make_one(buf, 0755);
    buf[i] = '/';
    if (made < 0)
      return -1;
  }
  return make_one(buf, mode) < 0 ? -1 : 0;
}
