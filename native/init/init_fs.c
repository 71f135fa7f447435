/* init_fs.c: sandbox-init's file requests, OPEN, FILE and FSOP (MKDIR,
 * UNLINK, RMDIR, LIST, STAT, WATCH, TREE): done by pid 1 as the sandbox's user, on
 * paths that resolve in the sandbox's own root. */
#define _GNU_SOURCE 1
#include <dirent.h>        /* opendir, readdir */
#include <errno.h>         /* errno, EINVAL, E2BIG */
#include <fcntl.h>         /* open, O_* */
#include <limits.h>        /* PATH_MAX */
#include <linux/openat2.h> /* struct open_how, RESOLVE_NO_MAGICLINKS */
#include <poll.h>          /* poll */
#include <string.h>        /* strcmp, strlen, memcpy */
#include <sys/socket.h>    /* send, MSG_NOSIGNAL */
#include <sys/stat.h>      /* mkdir, lstat, S_ISLNK */
#include <sys/syscall.h>   /* SYS_openat2 */
#include <unistd.h>        /* close, unlink, rmdir, readlink, read, pread, write, lseek */

#include "init.h"
#include "init_handoff.h"
#include "proto.h"
#include "init_tree.h"
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
static void relay_open(struct conn *c, int fd, bool append, const char *path)
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
  if (S_ISREG(st.st_mode)) {
    c->file = fd;
    c->file_append = append;
    c->file_offset = 0;
  } else {
    close(fd);
  }
  struct psb_stat out = stat_of(&st);
  if (proto_send(c->fd, PSB_REP_OK, &out, sizeof out, -1) < 0)
    conn_drop(c);
}

/* open(path), following no magic link (/proc/<pid>/fd/N, /proc/<pid>/cwd, ...): pid 1 may open its
 * own descriptors through /proc/1/fd or /proc/self/fd, which sandbox code may not (init is not
 * dumpable), and among them are the host's supervisor.log (its stdout and stderr), which a link
 * planted at a path the host then opens led it to (red14: a rootless caller's write truncated
 * it).  open() where the kernel has no openat2 (ENOSYS). */
static int open_no_magic(const char *path, int flags, mode_t mode)
{
  struct open_how how = {
      .flags = (uint64_t)flags, .mode = (flags & O_CREAT) != 0 ? mode : 0, .resolve = RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
  if (fd < 0 && errno == ENOSYS)
    fd = open(path, flags, mode);
  return fd;
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
  int fd = open_no_magic(path, (int)o.flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, (mode_t)o.mode);
  if (fd < 0) {
    reply_error(c, errno, path);
    return;
  }
  last_activity = now_ms();
  if (handoff) {
    relay_open(c, fd, (o.flags & O_APPEND) != 0, path);
    return;
  }
  reply(c, PSB_REP_FD, fd);
  close(fd);
}

/* SEEK's new offset, WRITE's count. */
static void reply_int64(struct conn *c, int64_t value)
{
  if (proto_send(c->fd, PSB_REP_OK, &value, sizeof value, -1) < 0)
    conn_drop(c);
}

/* SEEK: the client's offset moves, never the file's (pread and pwrite at it):
 * sandbox code that took the same open file from pid 1 (gVisor lets it,
 * docs/RUNNERS.md) cannot move where the host reads or writes. */
static void seek_file(struct conn *c, int whence, int64_t by)
{
  struct stat st;
  int64_t base = whence == SEEK_SET ? 0 : c->file_offset, to;
  if (whence == SEEK_END) {
    if (fstat(c->file, &st) < 0) {
      reply_error(c, errno, "file");
      return;
    }
    base = st.st_size;
  }
  if (__builtin_add_overflow(base, by, &to) || to < 0) {
    reply_error(c, EINVAL, "file seek before the start or past the largest offset");
    return;
  }
  c->file_offset = to;
  reply_int64(c, to);
}

static void write_file(struct conn *c, const char *data, size_t len)
{
  struct stat st;
  ssize_t n = pwrite(c->file, data, len, c->file_offset); /* O_APPEND: at the end, as write() */
  if (n < 0 || (c->file_append && fstat(c->file, &st) < 0)) {
    reply_error(c, errno, "file");
    return;
  }
  c->file_offset = c->file_append ? st.st_size : c->file_offset + n;
  reply_int64(c, n);
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
  switch (f.op) {
  case PSB_FILE_READ:
  case PSB_FILE_PEEK: {
    if (f.arg < 0 || f.arg > PSB_FILE_CHUNK || len != 0) {
      reply_error(c, EINVAL, "bad file read size");
      return;
    }
    ssize_t n = pread(c->file, buf, (size_t)f.arg, c->file_offset);
    if (n < 0) {
      reply_error(c, errno, "file");
      return;
    }
    if (f.op == PSB_FILE_READ)
      c->file_offset += n;
    if (proto_send(c->fd, PSB_REP_OK, buf, (size_t)n, -1) < 0)
      conn_drop(c);
    return;
  }
  case PSB_FILE_WRITE:
    if (len > PSB_FILE_CHUNK)
      reply_error(c, EINVAL, "file write larger than a chunk");
    else
      write_file(c, data, len);
    return;
  case PSB_FILE_SEEK:
    if (len != 0 || (f.whence != SEEK_SET && f.whence != SEEK_CUR && f.whence != SEEK_END))
      reply_error(c, EINVAL, "bad file seek");
    else
      seek_file(c, (int)f.whence, f.arg);
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

/* The watch relay (handoff_fork_relay): each read of the inotify fd (fd 0,
 * whole events, at most the client's read size) goes to the client's socket
 * (fd 1) as one datagram, until the client closes it. */
static _Noreturn void relay_events(void)
{
  static char buf[65536];
  for (;;) {
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = 1, .events = 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR)
      _exit(1);
    if (p[1].revents & (POLLHUP | POLLERR))
      _exit(0);
    ssize_t n = p[0].revents ? read(0, buf, sizeof buf) : 0;
    if (n > 0 && send(1, buf, (size_t)n, MSG_NOSIGNAL) < 0)
      _exit(0);
  }
}

static void reply_watch(struct conn *c, const char *path, bool recursive, int relay)
{
  static char out[LIST_MAX];
  size_t used = 0;
  int fd = watch_open(path, recursive, out, sizeof out, &used);
  if (fd < 0) {
    reply_error(c, errno, errno == E2BIG ? "too many directories to watch" : path);
    return;
  }
  pid_t pid = relay >= 0 ? handoff_fork_relay((int[]){fd, relay}, 2) : 0;
  if (pid == 0 && relay >= 0)
    relay_events();
  if (pid < 0)
    reply_error(c, errno, errno == EMFILE ? "too many watches relayed out of the sandbox at once" : "fork");
  else
    reply_body(c, relay >= 0 ? PSB_REP_OK : PSB_REP_FD, out, used, relay >= 0 ? -1 : fd);
  close(fd);
}

static void fsop(struct conn *c, const struct request *req)
{
  struct psb_fsop o;
  memcpy(&o, req->body, sizeof o);
  const char *path = (const char *)req->body + sizeof o;
  if (strlen(path) + 1 != req->body_len - sizeof o || (o.mode & ~07777u) != 0) {
    reply_error(c, EINVAL, "bad fsop path or mode");
    return;
  }
  if (req->nfds != 0 && o.op != PSB_FSOP_WATCH && o.op != PSB_FSOP_TREE) {
    reply_error(c, EINVAL, "only a watch or a tree takes a descriptor");
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
    reply_watch(c, path, (o.mode & PSB_WATCH_RECURSIVE) != 0, req->nfds == 1 ? req->fds[0] : -1);
    return;
  case PSB_FSOP_TREE:
    reply_tree(c, path, req->nfds == 1 ? req->fds[0] : -1);
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

void handle_fsop(struct conn *c, struct request *req)
{
  fsop(c, req);
  proto_close_fds(req);
}
