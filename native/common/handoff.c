/* handoff.c: SCM_RIGHTS messages between the supervisor and init (handoff.h). */
#define _GNU_SOURCE 1
#include "handoff.h"

#include "fdutil.h"

#include <errno.h>      /* errno, EPROTO, EINTR, EINVAL */
#include <string.h>     /* memcpy */
#include <sys/socket.h> /* recvmsg, CMSG_*, SCM_RIGHTS */
#include <unistd.h>     /* close */

_Static_assert(HANDOFF_NFDS * sizeof(int) <= FD_CONTROL_MAX, "fd_send_control carries HANDOFF_NFDS fds");

int handoff_send(int sock, const int *fds, size_t n, int flags)
{
  if (n == 0 || n > HANDOFF_NFDS) {
    errno = EINVAL;
    return -1;
  }
  return fd_send_control(sock, SCM_RIGHTS, fds, n * sizeof(int), flags);
}

int handoff_recv(int sock, int *fds, size_t max, int flags)
{
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(HANDOFF_NFDS * sizeof(int))];
  } control;
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control};
  ssize_t got;
  while ((got = recvmsg(sock, &m, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  if (got <= 0)
    return (int)got;
  /* The buffer holds HANDOFF_NFDS fds, so one SCM_RIGHTS message is all that fits:
   * the kernel closes whatever did not (MSG_CTRUNC). */
  int got_fds[HANDOFF_NFDS];
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  size_t n = c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS
      ? (c->cmsg_len - CMSG_LEN(0)) / sizeof(int)
      : 0;
  if (n > 0)
    memcpy(got_fds, CMSG_DATA(c), n * sizeof(int));
  if (n == 0 || n > max || (m.msg_flags & MSG_CTRUNC) != 0) {
    for (size_t i = 0; i < n; i++)
      close(got_fds[i]);
    errno = EPROTO;
    return -1;
  }
  memcpy(fds, got_fds, n * sizeof(int));
  return (int)n;
}
