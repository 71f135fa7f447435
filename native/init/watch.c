/* watch.c: the FSOP_WATCH request.  init resolves the path inside the
 * sandbox (symlinks followed, as Modal's watch does) and hands the inotify fd
 * itself to the client, which reads events from it directly: init keeps no
 * state per watch and the events never pass through pid 1.  The client asks
 * again for directories created later under a recursive watch. */
#define _GNU_SOURCE 1
#include "watch.h"

#include <dirent.h>      /* opendir, readdir */
#include <errno.h>       /* errno, E2BIG */
#include <limits.h>      /* PATH_MAX */
#include <stdint.h>      /* int32_t */
#include <stdio.h>       /* snprintf */
#include <string.h>      /* memcpy, strcmp, strlen */
#include <sys/inotify.h> /* inotify_* */
#include <unistd.h>      /* close */

/* Every change Modal reports; IN_OPEN and IN_CLOSE_NOWRITE say nothing new. */
#define WATCH_MASK \
  (IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | \
   IN_DELETE_SELF | IN_MOVE_SELF)
#define MAX_DEPTH 64

struct walk {
  int fd;
  char *out;
  size_t cap, used;
};

static int add(struct walk *w, const char *full, const char *rel, bool top)
{
  /* Below the top, never follow a symlink out of the tree. */
  uint32_t mask = WATCH_MASK | (top ? 0 : IN_DONT_FOLLOW | IN_ONLYDIR);
  int32_t wd = inotify_add_watch(w->fd, full, mask);
  if (wd < 0)
    return -1;
  size_t len = strlen(rel) + 1;
  if (w->used + sizeof wd + len > w->cap) {
    errno = E2BIG;
    return -1;
  }
  memcpy(w->out + w->used, &wd, sizeof wd);
  memcpy(w->out + w->used + sizeof wd, rel, len);
  w->used += sizeof wd + len;
  return 0;
}

static int walk_dir(struct walk *w, const char *full, const char *rel, int depth)
{
  if (depth > MAX_DEPTH)
    return 0;
  DIR *d = opendir(full);
  if (d == NULL)
    return errno == ENOTDIR || errno == EACCES || errno == ENOENT ? 0 : -1;
  struct dirent *e;
  int r = 0;
  while (r == 0 && (e = readdir(d)) != NULL) {
    if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char sub_full[PATH_MAX], sub_rel[PATH_MAX];
    if (snprintf(sub_full, sizeof sub_full, "%s/%s", full, e->d_name) >= (int)sizeof sub_full ||
        snprintf(sub_rel, sizeof sub_rel, "%s%s%s", rel, *rel ? "/" : "", e->d_name) >= (int)sizeof sub_rel)
      continue; /* deeper than any path the client could name */
    if (add(w, sub_full, sub_rel, false) < 0)
      r = errno == ENOENT || errno == ENOTDIR ? 0 : -1; /* gone meanwhile: skip */
    else
      r = walk_dir(w, sub_full, sub_rel, depth + 1);
  }
  int saved = errno;
  closedir(d);
  errno = saved;
  return r;
}

int watch_open(const char *path, bool recursive, char *out, size_t cap, size_t *used)
{
  struct walk w = {.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), .out = out, .cap = cap};
  if (w.fd < 0)
    return -1;
  if (add(&w, path, "", true) < 0 || (recursive && walk_dir(&w, path, "", 0) < 0)) {
    int saved = errno;
    close(w.fd);
    errno = saved;
    return -1;
  }
  *used = w.used;
  return w.fd;
}
