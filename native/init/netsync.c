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

#include <sys/socket.h> /* SCM_CREDENTIALS, struct ucred */
#include <unistd.h>     /* getpid, getuid, getgid, close */

#include "fdutil.h"
#include "util.h"

static void send_credentials(int fd)
{
  struct ucred cred = {.pid = getpid(), .uid = getuid(), .gid = getgid()};
  if (fd_send_control(fd, SCM_CREDENTIALS, &cred, sizeof cred, 0) < 0)
    pdie("network handshake");
}

void netsync_wait(int fd)
{
  if (!fd_is_open(fd))
    return;
  send_credentials(fd);
  if (fd_expect_byte(fd, 'g') < 0)
    die("the supervisor did not connect the sandbox's network");
  close(fd);
}
