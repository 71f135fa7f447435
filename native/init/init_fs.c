/* init_fs.c: sandbox-init's file requests, OPEN, FILE and FSOP (MKDIR,
 * UNLINK, RMDIR, LIST, STAT, WATCH): done by pid 1 as the sandbox's user, on
 * paths that resolve in the sandbox's own root. */
#define _GNU_SOURCE 1
#include <dirent.h>   /* opendir, readdir */
#include <errno.h>    /* errno, EINVAL, E2BIG */
#include <fcntl.h>    /* open, O_* */
#include <limits.h>   /* PATH_MAX */
#include <string.h>   /* strcmp, strlen, memcpy */
#include <sys/stat.h> /* mkdir, lstat, S_ISLNK */
#include <unistd.h>   /* close, unlink, rmdir, readlink, read, pread, write, lseek */

#include "init.h"
#include "init_handoff.h"
#include "proto.h"
#include "util.h"
#include "watch.h"

static struct psb_stat stat_of(const struct stat *st)
{
  return (struct psb_stat){
      .mode = st->st_mode,
      .uid = st->st_uid,
      .gid = st->st_gid,
      .size = (uint64_t)st->st_size,
      .mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
  };
}

/* --handoff: no descriptor leaves gVisor, so the connection relays the file
 * (protocol.h, PSB_REQ_FILE).  The reply is its stat, for the client to
 * refuse what is not a regular file as it does with a descriptor; only a
 * regular file is kept, so no FILE request can block pid 1 (a FIFO) or stream
 * for ever (a device): each reads or writes one bounded chunk of it. */
static void relay_open(struct conn *c, int fd, const char *path)
{
  struct stat st;
  if (c->file >= 0) {
    close(fd);
    reply_error(c, EBUSY, "this connection already holds a file");
    return;
  }
  if (fstat(fd, &st) < 0) {
    int err = errno;
    close(fd);
    reply_error(c, err, path);
    return;
  }
  if (S_ISREG(st.st_mode))
    c->file = fd;
  else
    close(fd);
  struct psb_stat out = stat_of(&st);
  if (proto_send(c->fd, PSB_REP_OK, &out, sizeof out, -1) < 0)
    conn_drop(c);
}

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
  if (handoff) {
    relay_open(c, fd, path);
    return;
  }
  reply(c, PSB_REP_FD, fd);
  close(fd);
}

static void reply_count(struct conn *c, ssize_t n)
{
  int64_t count = n;
  if (n < 0)
    reply_error(c, errno, "file");
  else if (proto_send(c->fd, PSB_REP_OK, &count, sizeof count, -1) < 0)
    conn_drop(c);
}

void handle_file(struct conn *c, const struct request *req)
{
  static char buf[PSB_FILE_CHUNK];
  struct psb_file f;
  memcpy(&f, req->body, sizeof f);
  const char *data = (const char *)req->body + sizeof f;
  size_t len = req->body_len - sizeof f;
  if (c->file < 0) {
    reply_error(c, EBADF, "no file is open on this connection");
    return;
  }
  ssize_t n;
  switch (f.op) {
  case PSB_FILE_READ:
  case PSB_FILE_PEEK:
    if (f.arg < 0 || f.arg > PSB_FILE_CHUNK || len != 0) {
      reply_error(c, EINVAL, "bad file read size");
      return;
    }
    if (f.op == PSB_FILE_READ) {
      n = read(c->file, buf, (size_t)f.arg);
    } else {
      off_t at = lseek(c->file, 0, SEEK_CUR);
      n = at < 0 ? -1 : pread(c->file, buf, (size_t)f.arg, at);
    }
    if (n < 0)
      reply_error(c, errno, "file");
    else if (proto_send(c->fd, PSB_REP_OK, buf, (size_t)n, -1) < 0)
      conn_drop(c);
    return;
  case PSB_FILE_WRITE:
    if (len > PSB_FILE_CHUNK) {
      reply_error(c, EINVAL, "file write larger than a chunk");
      return;
    }
    reply_count(c, write(c->file, data, len));
    return;
  case PSB_FILE_SEEK:
    if (len != 0 || (f.whence != SEEK_SET && f.whence != SEEK_CUR && f.whence != SEEK_END)) {
      reply_error(c, EINVAL, "bad file seek");
      return;
    }
    reply_count(c, lseek(c->file, (off_t)f.arg, (int)f.whence));
    return;
  default:
    reply_error(c, EINVAL, "unknown file op");
  }
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
  out.st = stat_of(&st);
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
