/* fdutil.c: file descriptor helpers. */
#define _GNU_SOURCE 1
#include "fdutil.h"

#include <errno.h>      /* errno, EINTR, EPROTO */
#include <fcntl.h>      /* open, fcntl, O_*, F_*, FD_CLOEXEC */
#include <string.h>     /* memcpy, strlen */
#include <sys/socket.h> /* sendmsg, recvmsg, CMSG_* */
#include <unistd.h>     /* read, write, close */

bool fd_is_open(int fd)
{
  return fcntl(fd, F_GETFD) >= 0;
}

int fd_set_cloexec(int fd, bool on)
{
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0)
    return -1;
  int want = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  return want == flags ? 0 : fcntl(fd, F_SETFD, want);
}

int write_all(int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int write_file(const char *path, const char *text)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int r = write_all(fd, text, strlen(text));
  int err = errno;
  close(fd);
  errno = err;
  return r;
}

int fd_expect_byte(int fd, char want)
{
  char got;
  ssize_t n;
  while ((n = read(fd, &got, 1)) < 0 && errno == EINTR)
    ;
  if (n == 1 && got == want)
    return 0;
  if (n >= 0)
    errno = EPROTO;
  return -1;
}

void write_nonblock(int fd, const void *buf, size_t len)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0)
    return;
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return;
  ssize_t unused = write(fd, buf, len);
  (void)unused;
  if (!(fl & O_NONBLOCK))
    fcntl(fd, F_SETFL, fl);
}

int fd_send_control(int sock, int type, const void *data, size_t len, int flags)
{
  char byte = 'f';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(FD_CONTROL_MAX)];
  } control = {0};
  if (CMSG_SPACE(len) > sizeof control.buf) {
    errno = EINVAL;
    return -1;
  }
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = CMSG_SPACE(len)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = type;
  c->cmsg_len = CMSG_LEN(len);
  memcpy(CMSG_DATA(c), data, len);
  ssize_t n;
  while ((n = sendmsg(sock, &m, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
    ;
  return n == 1 ? 0 : -1;
}

int fd_send(int sock, int fd)
{
  return fd_send_control(sock, SCM_RIGHTS, &fd, sizeof fd, 0);
}

int fd_receive(int sock)
{
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  int fd = -1;
  for (struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&m) : NULL; c != NULL; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(c), sizeof fd);
  if (fd >= 0 && (m.msg_flags & MSG_CTRUNC) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}
