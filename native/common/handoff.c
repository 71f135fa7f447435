/* handoff.c: SCM_RIGHTS messages between the supervisor and init (handoff.h). */
#define _GNU_SOURCE 1
#include "handoff.h"

#include <errno.h>      /* errno, EPROTO, EINTR */
#include <string.h>     /* memcpy */
#include <sys/socket.h> /* sendmsg, recvmsg, CMSG_*, SCM_RIGHTS */
#include <unistd.h>     /* close */

union control {
  struct cmsghdr align;
  char buf[CMSG_SPACE(HANDOFF_NFDS * sizeof(int))];
};

int handoff_send(int sock, const int *fds, size_t n, int flags)
{
  if (n == 0 || n > HANDOFF_NFDS) {
    errno = EINVAL;
    return -1;
  }
  char byte = 'f';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union control control = {0};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = CMSG_SPACE(n * sizeof(int))};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(n * sizeof(int));
  memcpy(CMSG_DATA(c), fds, n * sizeof(int));
  ssize_t sent;
  while ((sent = sendmsg(sock, &m, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
    ;
  return sent == 1 ? 0 : -1;
}

int handoff_recv(int sock, int *fds, size_t max, int flags)
{
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union control control;
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
