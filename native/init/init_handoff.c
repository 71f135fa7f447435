/* init_handoff.c: init's fds and connections over stdin (init_handoff.h). */
#define _GNU_SOURCE 1
#include "init_handoff.h"

#include <errno.h>      /* errno */
#include <fcntl.h>      /* fcntl, open, O_* */
#include <limits.h>     /* INT_MAX: gVisor refuses a larger close_range bound */
#include <signal.h>     /* sigprocmask, kill, SIG* */
#include <poll.h>       /* poll */
#include <string.h>     /* memcpy */
#include <termios.h>    /* tcgetattr, ISIG, V* */
#include <sys/ioctl.h>  /* ioctl, TIOCSWINSZ, struct winsize */
#include <sys/prctl.h>  /* prctl, PR_SET_PDEATHSIG */
#include <sys/socket.h> /* recv, MSG_DONTWAIT */
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
  if (req->type == PSB_REQ_EXEC) { /* gVisor cannot make a host terminal a controlling one: PTY_INSIDE */
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

pid_t handoff_fork_relay(const int *fds, int n)
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
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != init || sigprocmask(SIG_SETMASK, &none, NULL) < 0)
    _exit(1);
  int high[RELAY_FDS_MAX];
  for (int i = 0; i < n; i++) /* above every place first, so that no dup2 below clobbers a later source */
    if ((high[i] = fcntl(fds[i], F_DUPFD, n)) < 0)
      _exit(1);
  for (int i = 0; i < n; i++)
    if (dup2(high[i], i) < 0)
      _exit(1);
  close_range((unsigned)n, INT_MAX, 0);
  return 0;
}

enum copy_state { COPY_OVER, COPY_IDLE, COPY_BUSY };

/* What a terminal's line discipline does with ISIG, which gVisor's (runsc
 * 20221219) does not: ^C, ^\ and ^Z in the input become SIGINT, SIGQUIT and
 * SIGTSTP for the process's group (the master cannot tell the foreground
 * group there: TIOCGPGRP fails), and are dropped.  Returns the length left. */
static size_t signal_keys(const struct relay_terminal *t, char *buf, size_t len)
{
  struct termios tio;
  if (t->pgid <= 0 || tcgetattr(t->tty, &tio) < 0 || !(tio.c_lflag & ISIG))
    return len;
  static const struct {
    int cc, sig;
  } keys[] = {{VINTR, SIGINT}, {VQUIT, SIGQUIT}, {VSUSP, SIGTSTP}};
  size_t kept = 0;
  for (size_t i = 0; i < len; i++) {
    bool key = false;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
      if (tio.c_cc[keys[k].cc] != _POSIX_VDISABLE && (cc_t)buf[i] == tio.c_cc[keys[k].cc]) {
        kill(-t->pgid, keys[k].sig);
        key = true;
      }
    if (!key)
      buf[kept++] = buf[i];
  }
  return kept;
}

/* One direction's step: moves what `from` has into `to` through the buffer,
 * never waiting (both are non-blocking).  COPY_OVER once `from` is at its
 * end or failing (the buffer flushed first), or `to` failing; COPY_IDLE when
 * `from` has nothing now. */
static enum copy_state copy_step(struct relay_copy *c, struct relay_terminal *t)
{
  if (c->sent == c->len) {
    ssize_t n = read(c->from, c->buf, sizeof c->buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      return COPY_OVER; /* EIO from a terminal's master: its last user closed it */
    if (n < 0)
      return COPY_IDLE;
    c->len = t != NULL && c->to == t->tty ? signal_keys(t, c->buf, (size_t)n) : (size_t)n;
    c->sent = 0;
  }
  ssize_t w = write(c->to, c->buf + c->sent, c->len - c->sent);
  if (w < 0 && errno != EAGAIN && errno != EINTR)
    return COPY_OVER;
  if (w > 0)
    c->sent += (size_t)w;
  return COPY_BUSY;
}

/* The end was signalled: what `from` holds still goes out, then the relay ends. */
static _Noreturn void drain(struct relay_copy *c)
{
  while (copy_step(c, NULL) == COPY_BUSY)
    if (c->sent < c->len) {
      struct pollfd p = {.fd = c->to, .events = POLLOUT};
      poll(&p, 1, -1);
    }
  _exit(0);
}

/* Sets each struct winsize datagram on the size socket as the terminal's size
 * (its foreground group gets SIGWINCH); false once the socket is closed or
 * sends anything else: the size then stays as it is. */
static bool take_sizes(const struct relay_terminal *t)
{
  for (;;) {
    struct winsize ws;
    ssize_t got = recv(t->size_fd, &ws, sizeof ws, MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
      return true;
    if (got != (ssize_t)sizeof ws)
      return false;
    ioctl(t->tty, TIOCSWINSZ, &ws);
  }
}

/* From the end socket: the process's pid (its group's id), then its end. */
static bool read_end(struct relay_terminal *t)
{
  pid_t pid;
  ssize_t got = read(t->end_fd, &pid, sizeof pid);
  if (got == (ssize_t)sizeof pid && t->pgid == 0) {
    t->pgid = pid;
    return false;
  }
  return !(got < 0 && (errno == EAGAIN || errno == EINTR));
}

_Noreturn void handoff_relay(struct relay_copy *copies, size_t n, struct relay_terminal *t)
{
  struct pollfd p[RELAY_COPIES_MAX + 2];
  bool sizes = t != NULL && t->size_fd >= 0;
  for (size_t i = 0; i < n; i++)
    if (fcntl(copies[i].from, F_SETFL, O_NONBLOCK) < 0 || fcntl(copies[i].to, F_SETFL, O_NONBLOCK) < 0)
      _exit(1);
  if (t != NULL && t->end_fd >= 0 && fcntl(t->end_fd, F_SETFL, O_NONBLOCK) < 0)
    _exit(1);
  for (;;) {
    for (size_t i = 0; i < n; i++) {
      struct relay_copy *c = &copies[i];
      if (c->open && copy_step(c, t) == COPY_OVER) {
        if (c->ends_relay)
          _exit(0);
        c->open = false;
      }
      bool waiting = c->sent < c->len; /* for room in `to`, else for data in `from` */
      p[i] = (struct pollfd){.fd = c->open ? (waiting ? c->to : c->from) : -1, .events = waiting ? POLLOUT : POLLIN};
    }
    sizes = sizes && take_sizes(t);
    p[n] = (struct pollfd){.fd = sizes ? t->size_fd : -1, .events = POLLIN};
    p[n + 1] = (struct pollfd){.fd = t != NULL ? t->end_fd : -1, .events = POLLIN}; /* -1: none */
    if (poll(p, n + 2, -1) < 0 && errno != EINTR)
      _exit(1);
    if (p[n + 1].revents != 0 && read_end(t))
      for (size_t i = 0; i < n; i++)
        if (copies[i].ends_relay)
          drain(&copies[i]);
  }
}
