/* netsync.c: sandbox-init's half of the network handshake.
 *
 * The supervisor connects the sandbox's network namespace (which its runner
 * child made) while the runner sets up the rest, and must know when that setup
 * is over: init running is the proof, and its message says so, with no
 * runner-specific protocol.  Init then waits until the network is connected.
 * Runs after the seccomp filter is installed and before anything is started or
 * served. */
#define _GNU_SOURCE 1
#include "netsync.h"

#include <errno.h>      /* errno, EINTR */
#include <sys/socket.h> /* send, MSG_NOSIGNAL */
#include <unistd.h>     /* close */

#include "fdutil.h"
#include "util.h"

void netsync_wait(int fd)
{
  if (!fd_is_open(fd))
    return;
  ssize_t n;
  while ((n = send(fd, "i", 1, MSG_NOSIGNAL)) < 0 && errno == EINTR)
    ;
  if (n != 1)
    pdie("network handshake");
  if (fd_expect_byte(fd, 'g') < 0)
    die("the supervisor did not connect the sandbox's network");
  close(fd);
}
