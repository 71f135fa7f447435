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

#include <errno.h>      /* errno */
#include <sys/socket.h> /* SCM_CREDENTIALS, struct ucred */
#include <unistd.h>     /* getpid, getuid, getgid, read, close */

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
  char go = 0;
  ssize_t n;
  while ((n = read(fd, &go, 1)) < 0 && errno == EINTR)
    ;
  if (n != 1 || go != 'g')
    die("the supervisor did not connect the sandbox's network");
  close(fd);
}
