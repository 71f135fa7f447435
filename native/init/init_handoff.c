/* init_handoff.c: init's fds and connections over stdin (init_handoff.h). */
#define _GNU_SOURCE 1
#include "init_handoff.h"

#include <errno.h>      /* errno */
#include <fcntl.h>      /* fcntl, open, O_* */
#include <limits.h>     /* INT_MAX: gVisor refuses a larger close_range bound */
#include <signal.h>     /* sigprocmask, SIGKILL */
#include <string.h>     /* memcpy */
#include <sys/prctl.h>  /* prctl, PR_SET_PDEATHSIG */
#include <sys/socket.h> /* MSG_DONTWAIT */
#include <unistd.h>     /* dup2, close, close_range, fork, getppid */

#include "fds.h"
#include "handoff.h"
#include "protocol.h"
#include "util.h"

bool handoff;

void handoff_receive(void)
{
  int got[HANDOFF_NFDS];
  static const int places[HANDOFF_NFDS] = HANDOFF_FDS;
  if (handoff_recv(0, got, HANDOFF_NFDS, 0) != HANDOFF_NFDS)
    die("the supervisor did not hand over the sandbox's descriptors");
  /* Above every place first, so that no dup2 below clobbers a received fd. */
  for (int k = 0; k < HANDOFF_NFDS; k++) {
    int high = fcntl(got[k], F_DUPFD_CLOEXEC, 64);
    if (high < 0)
      pdie("handoff");
    close(got[k]);
    got[k] = high;
  }
  for (int k = 0; k < HANDOFF_NFDS; k++)
    if (dup2(got[k], places[k]) < 0 || close(got[k]) < 0)
      pdie("handoff");
  if (dup2(0, FD_LISTEN) < 0) /* before the open below, which would take a free fd 3 */
    pdie("handoff");
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0 || dup2(null, 0) < 0 || close(null) < 0)
    pdie("handoff");
}

int handoff_accept(void)
{
  int fd;
  int n = handoff_recv(FD_LISTEN, &fd, 1, MSG_DONTWAIT);
  if (n == 0)
    die("the supervisor is gone");
  if (n < 0)
    return -1;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

bool handoff_refuses(const struct request *req)
{
  if (req->type == PSB_REQ_FSOP) { /* proto_recv checked the body's size */
    struct psb_fsop f;
    memcpy(&f, req->body, sizeof f);
    return f.op == PSB_FSOP_WATCH && req->nfds == 0; /* without the socket init relays events into */
  }
  if (req->type == PSB_REQ_EXEC) { /* gVisor cannot make a host terminal a controlling one */
    struct psb_exec e;
    memcpy(&e, req->body, sizeof e);
    return (e.flags & PSB_EXEC_FLAG_PTY) != 0;
  }
  if (req->type == PSB_REQ_ENTRY_STDIN) /* without the read end of a pipe init relays */
    return req->nfds == 0;
  return req->type == PSB_REQ_PIDFD;
}

static pid_t relays[HANDOFF_RELAYS_MAX];
static size_t nrelays;

void handoff_reaped(pid_t pid)
{
  for (size_t i = 0; i < nrelays; i++)
    if (relays[i] == pid) {
      relays[i] = relays[--nrelays];
      return;
    }
}

pid_t handoff_fork_relay(int in, int out)
{
  if (nrelays == HANDOFF_RELAYS_MAX) {
    errno = EMFILE;
    return -1;
  }
  pid_t init = getpid(), pid = fork();
  if (pid > 0)
    relays[nrelays++] = pid;
  if (pid != 0)
    return pid;
  sigset_t none;
  sigemptyset(&none);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != init || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
      sigprocmask(SIG_SETMASK, &none, NULL) < 0)
    _exit(1);
  close_range(3, INT_MAX, 0);
  return 0;
}
