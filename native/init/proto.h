/* proto.h: receiving and validating requests, sending replies (init side of
 * protocol.h). */
#if !defined(PSB_PROTO_H)
#define PSB_PROTO_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint16_t, uint32_t, int32_t */

#include "protocol.h"

#define PSB_EXEC_FDS 3 /* the most fds any request carries */

struct request {
  uint16_t type;
  const unsigned char *body; /* points into a static buffer: valid until the next recv */
  size_t body_len;
  int fds[PSB_EXEC_FDS]; /* CLOEXEC; the caller owns and closes them */
  unsigned nfds;
};

enum proto_result {
  PROTO_OK,    /* *req holds a well-formed request */
  PROTO_AGAIN, /* nothing to read after all */
  PROTO_EOF,   /* peer closed, or the socket failed: drop the connection */
  PROTO_BAD,   /* malformed: reply *err / *why, then drop; fds already closed */
};

/* One recvmsg(): one request and its fds.  Checks the framing (magic, version,
 * length, truncation) and the body size and fd count the type calls for. */
enum proto_result proto_recv(int fd, struct request *req, int *err, const char **why);

struct exec_request {
  uint32_t flags;
  uint32_t timeout_ms;
  const char *cwd; /* "" = init's cwd */
  char **argv;     /* NULL-terminated, argv[0] exists */
  char **envp;     /* NULL-terminated */
  char **vec;      /* allocation behind argv and envp */
};

/* Parses a PSB_REQ_EXEC body.  Returns 0, or an errno with *why set. */
int proto_parse_exec(const struct request *req, struct exec_request *x, const char **why);
void proto_free_exec(struct exec_request *x);

void proto_close_fds(struct request *req);

/* All sends are MSG_NOSIGNAL|MSG_DONTWAIT: a client that does not read gets
 * -1 (EAGAIN) and is dropped by the caller instead of blocking pid 1. */
int proto_send(int fd, uint16_t type, const void *body, size_t len, int passfd);
int proto_send_error(int fd, int err, const char *why);
int proto_send_exited(int fd, uint32_t kind, int32_t value);
int proto_send_started(int fd, uint32_t pid);

#endif
