/* init_fs.c: sandbox-init's file requests, OPEN and FSOP (MKDIR, UNLINK,
 * RMDIR, LIST, STAT, WATCH): done by pid 1 as the sandbox's user, on paths
 * that resolve in the sandbox's own root. */
#define _GNU_SOURCE 1
#include <dirent.h>   /* opendir, readdir */
#include <errno.h>    /* errno, EINVAL, E2BIG */
#include <fcntl.h>    /* open, O_* */
#include <limits.h>   /* PATH_MAX */
#include <string.h>   /* strcmp, strlen, memcpy */
#include <sys/stat.h> /* mkdir, lstat, S_ISLNK */
#include <unistd.h>   /* close, unlink, rmdir, readlink */

#include "init.h"
#include "proto.h"
#include "util.h"
#include "watch.h"

/* O_NONBLOCK so that a FIFO planted at the path cannot block pid 1; the
 * client clears it on the descriptor it receives. */
void handle_open(struct conn *c, const struct request *req)
{
  struct psb_open o;
  memcpy(&o, req->body, sizeof o);
  const char *path = (const char *)req->body + sizeof o;
  if ((o.flags & ~PSB_OPEN_FLAGS_ALLOWED) != 0 || (o.mode & ~07777u) != 0 ||
      strlen(path) + 1 != req->body_len - sizeof o) {
    reply_error(c, EINVAL, "bad open flags, mode or path");
    return;
  }
  int fd = open(path, (int)o.flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, (mode_t)o.mode);
  if (fd < 0) {
    reply_error(c, errno, path);
    return;
  }
  last_activity = now_ms();
  reply(c, PSB_REP_FD, fd);
  close(fd);
}

/* LIST replies are bounded so that one datagram carries them whatever the
 * socket's buffer size. */
#define LIST_MAX (200 * 1024)

static void reply_listing(struct conn *c, const char *path)
{
  static char out[LIST_MAX];
  DIR *d = opendir(path);
  if (d == NULL) {
    reply_error(c, errno, path);
    return;
  }
  size_t used = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    size_t len = strlen(e->d_name) + 1;
    if (used + 1 + len > sizeof out) {
      closedir(d);
      reply_error(c, E2BIG, "directory too large to list in one reply");
      return;
    }
    out[used++] = (char)e->d_type;
    memcpy(out + used, e->d_name, len);
    used += len;
  }
  closedir(d);
  if (proto_send(c->fd, PSB_REP_OK, out, used, -1) < 0)
    conn_drop(c);
}

static void reply_stat(struct conn *c, const char *path)
{
  struct {
    struct psb_stat st;
    char target[PATH_MAX + 1];
  } out = {0};
  struct stat st;
  if (lstat(path, &st) < 0) {
    reply_error(c, errno, path);
    return;
  }
  out.st = (struct psb_stat){
      .mode = st.st_mode,
      .uid = st.st_uid,
      .gid = st.st_gid,
      .size = (uint64_t)st.st_size,
      .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
  };
  ssize_t n = S_ISLNK(st.st_mode) ? readlink(path, out.target, PATH_MAX) : 0;
  size_t len = sizeof out.st + (n > 0 ? (size_t)n + 1 : 0);
  if (proto_send(c->fd, PSB_REP_OK, &out, len, -1) < 0)
    conn_drop(c);
}

static void reply_watch(struct conn *c, const char *path, bool recursive)
{
  static char out[LIST_MAX];
  size_t used = 0;
  int fd = watch_open(path, recursive, out, sizeof out, &used);
  if (fd < 0) {
    reply_error(c, errno, errno == E2BIG ? "too many directories to watch" : path);
    return;
  }
  if (proto_send(c->fd, PSB_REP_FD, out, used, fd) < 0)
    conn_drop(c);
  close(fd);
}

void handle_fsop(struct conn *c, const struct request *req)
{
  struct psb_fsop o;
  memcpy(&o, req->body, sizeof o);
  const char *path = (const char *)req->body + sizeof o;
  if (strlen(path) + 1 != req->body_len - sizeof o || (o.mode & ~07777u) != 0) {
    reply_error(c, EINVAL, "bad fsop path or mode");
    return;
  }
  last_activity = now_ms();
  int r;
  switch (o.op) {
  case PSB_FSOP_MKDIR:
    r = mkdir(path, (mode_t)o.mode);
    break;
  case PSB_FSOP_UNLINK:
    r = unlink(path);
    break;
  case PSB_FSOP_RMDIR:
    r = rmdir(path);
    break;
  case PSB_FSOP_LIST:
    reply_listing(c, path);
    return;
  case PSB_FSOP_STAT:
    reply_stat(c, path);
    return;
  case PSB_FSOP_WATCH:
    reply_watch(c, path, (o.mode & PSB_WATCH_RECURSIVE) != 0);
    return;
  default:
    reply_error(c, EINVAL, "unknown fsop");
    return;
  }
  if (r < 0)
    reply_error(c, errno, path);
  else
    reply(c, PSB_REP_OK, -1);
}
