/* proto.c: receiving and validating requests, sending replies. */
#define _GNU_SOURCE 1
#include "proto.h"

#include <errno.h>      /* EPROTO, EINVAL, EOPNOTSUPP, EAGAIN */
#include <stdlib.h>     /* malloc, free */
#include <string.h>     /* memcpy, memchr, strnlen */
#include <sys/socket.h> /* recvmsg, sendmsg, CMSG_*, SCM_RIGHTS */
#include <unistd.h>     /* close */

/* One request at a time: init is single-threaded.  Exactly PSB_MAX_MESSAGE
 * bytes, so MSG_TRUNC means "too long". */
static unsigned char inbuf[PSB_MAX_MESSAGE];

/* Room for more fds than any request carries, so that a request with too
 * many shows up as a wrong count (or MSG_CTRUNC) rather than silently fitting. */
#define CMSG_FDS (PSB_EXEC_FDS + 1)

static enum proto_result bad(struct request *req, int e, const char *w, int *err, const char **why)
{
  proto_close_fds(req);
  *err = e;
  *why = w;
  return PROTO_BAD;
}

enum proto_result proto_recv(int fd, struct request *req, int *err, const char **why)
{
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * CMSG_FDS)];
  } control;
  struct iovec iov = {.iov_base = inbuf, .iov_len = sizeof inbuf};
  struct msghdr mh = {
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = control.buf,
      .msg_controllen = sizeof control.buf,
  };
  req->nfds = 0;
  ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0)
    return errno == EAGAIN || errno == EINTR ? PROTO_AGAIN : PROTO_EOF;

  /* Take every fd that arrived, whatever else is wrong, so none leaks. */
  int extra = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int rfd;
      memcpy(&rfd, CMSG_DATA(c) + i * sizeof(int), sizeof rfd);
      if (req->nfds < PSB_EXEC_FDS) {
        req->fds[req->nfds++] = rfd;
      } else {
        close(rfd);
        extra++;
      }
    }
  }
  if (n == 0 && req->nfds == 0 && extra == 0)
    return PROTO_EOF;
  if (mh.msg_flags & MSG_CTRUNC || extra > 0)
    return bad(req, EPROTO, "too many file descriptors", err, why);
  if (mh.msg_flags & MSG_TRUNC)
    return bad(req, EPROTO, "message too long", err, why);

  struct psb_header h;
  if ((size_t)n < sizeof h)
    return bad(req, EPROTO, "short message", err, why);
  memcpy(&h, inbuf, sizeof h);
  if (h.magic != PSB_MAGIC)
    return bad(req, EPROTO, "bad magic", err, why);
  if (h.version != PSB_VERSION)
    return bad(req, EPROTO, "unsupported protocol version", err, why);
  if (h.length != (size_t)n)
    return bad(req, EPROTO, "length does not match the datagram size", err, why);

  size_t body_len = (size_t)n - sizeof h;
  unsigned want_fds = 0;
  switch (h.type) {
  case PSB_REQ_EXEC:
    if (body_len < sizeof(struct psb_exec))
      return bad(req, EPROTO, "exec body too short", err, why);
    want_fds = PSB_EXEC_FDS;
    break;
  case PSB_REQ_FSOP:
    if (body_len < sizeof(struct psb_fsop) + 2 || inbuf[n - 1] != '\0')
      return bad(req, EPROTO, "fsop needs an op, a mode and a NUL-terminated path", err, why);
    want_fds = req->nfds > 0 ? 1 : 0; /* WATCH: none, or the socket init relays events into; TREE: its socket */
    break;
  case PSB_REQ_OPEN:
    if (body_len < sizeof(struct psb_open) + 2 || inbuf[n - 1] != '\0')
      return bad(req, EPROTO, "open needs flags, mode and a NUL-terminated path", err, why);
    break;
  case PSB_REQ_FILE:
    if (body_len < sizeof(struct psb_file))
      return bad(req, EPROTO, "file request body too short", err, why);
    break;
  case PSB_REQ_ENTRY_STDIN:
    if (body_len != 0)
      return bad(req, EPROTO, "unexpected body", err, why);
    want_fds = req->nfds > 0 ? 1 : 0; /* none, or the read end init relays (protocol.h) */
    break;
  case PSB_REQ_ENTRY_STDIN_CLOSE:
  case PSB_REQ_PIDFD:
    if (body_len != 0)
      return bad(req, EPROTO, "unexpected body", err, why);
    break;
  default:
    return bad(req, EPROTO, "unknown request type", err, why);
  }
  if (req->nfds != want_fds)
    return bad(req, EPROTO, "wrong number of file descriptors", err, why);

  req->type = h.type;
  req->body = inbuf + sizeof h;
  req->body_len = body_len;
  return PROTO_OK;
}

void proto_close_fds(struct request *req)
{
  for (unsigned i = 0; i < req->nfds; i++)
    close(req->fds[i]);
  req->nfds = 0;
}

/* Returns the NUL-terminated string at *p and moves past it, or NULL when it
 * would run past end. */
static char *next_string(const unsigned char **p, const unsigned char *end)
{
  const unsigned char *nul = memchr(*p, '\0', (size_t)(end - *p));
  if (nul == NULL)
    return NULL;
  char *s = (char *)*p;
  *p = nul + 1;
  return s;
}

int proto_parse_exec(const struct request *req, struct exec_request *x, const char **why)
{
  struct psb_exec e;
  memcpy(&e, req->body, sizeof e);
  const unsigned char *p = req->body + sizeof e;
  const unsigned char *end = req->body + req->body_len;

  *x = (struct exec_request){.flags = e.flags, .timeout_ms = e.timeout_ms};
  if ((e.flags & ~PSB_EXEC_FLAG_PTY) != 0) {
    *why = "unknown exec flags";
    return EINVAL;
  }
  if (e.argc == 0) {
    *why = "argc must be at least 1";
    return EINVAL;
  }
  /* Every string takes at least its NUL: this bounds the allocation below
   * by the message size. */
  if ((uint64_t)e.argc + e.envc + 1 > (uint64_t)(end - p)) {
    *why = "more strings than bytes";
    return EINVAL;
  }
  x->vec = malloc(((size_t)e.argc + 1 + (size_t)e.envc + 1) * sizeof(char *));
  if (x->vec == NULL) {
    *why = "out of memory";
    return ENOMEM;
  }
  x->argv = x->vec;
  x->envp = x->vec + e.argc + 1;

  *why = "unterminated string";
  if ((x->cwd = next_string(&p, end)) == NULL)
    goto fail;
  for (uint32_t i = 0; i < e.argc; i++)
    if ((x->argv[i] = next_string(&p, end)) == NULL)
      goto fail;
  x->argv[e.argc] = NULL;
  for (uint32_t i = 0; i < e.envc; i++)
    if ((x->envp[i] = next_string(&p, end)) == NULL)
      goto fail;
  x->envp[e.envc] = NULL;
  if (p != end) {
    *why = "trailing bytes after the strings";
    goto fail;
  }
  return 0;
fail:
  proto_free_exec(x);
  return EINVAL;
}

void proto_free_exec(struct exec_request *x)
{
  free(x->vec);
  x->vec = x->argv = x->envp = NULL;
}

int proto_send(int fd, uint16_t type, const void *body, size_t len, int passfd)
{
  struct psb_header h = {
      .magic = PSB_MAGIC,
      .version = PSB_VERSION,
      .type = type,
      .length = (uint32_t)(sizeof h + len),
  };
  struct iovec iov[2] = {
      {.iov_base = &h, .iov_len = sizeof h},
      {.iov_base = (void *)body, .iov_len = len},
  };
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1};
  if (passfd >= 0) {
    mh.msg_control = control.buf;
    mh.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &passfd, sizeof passfd);
  }
  return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -1 : 0;
}

int proto_send_error(int fd, int err, const char *why)
{
  struct {
    int32_t err;
    char why[256];
  } b = {.err = err};
  size_t n = strnlen(why, sizeof b.why - 1);
  memcpy(b.why, why, n);
  b.why[n] = '\0';
  return proto_send(fd, PSB_REP_ERROR, &b, sizeof b.err + n + 1, -1);
}

int proto_send_exited(int fd, uint32_t kind, int32_t value)
{
  struct psb_exited b = {.kind = kind, .value = value};
  return proto_send(fd, PSB_REP_EXITED, &b, sizeof b, -1);
}

int proto_send_started(int fd, uint32_t pid)
{
  return proto_send(fd, PSB_REP_STARTED, &pid, sizeof pid, -1);
}
