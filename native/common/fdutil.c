/* fdutil.c: file descriptor helpers. */
#define _GNU_SOURCE 1
#include "fdutil.h"

#include <errno.h>  /* errno, EINTR */
#include <fcntl.h>  /* fcntl, F_*, FD_CLOEXEC, O_NONBLOCK */
#include <unistd.h> /* write */

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
