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
#include <sys/socket.h> /* recv, send, MSG_* */
#include <sys/wait.h>   /* waitpid, WIFEXITED, WEXITSTATUS */
#include <unistd.h>     /* dup2, close, close_range, fork, getppid, getsid, setpgid, tcgetpgrp */

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

/* What a terminal's line discipline does with ISIG, which gVisor's does not:
 * ^C, ^\ and ^Z in the input become SIGINT, SIGQUIT and SIGTSTP, which the
 * terminal's witness sends to its foreground group (handoff_start_witness),
 * and are dropped.  Returns the length left.  A witness that does not take
 * them (stopped, or killed by sandbox code) loses them: the relay never
 * waits.  Linux's own (the other runners: keys_fd -1) signals the foreground
 * group itself: the keys go to it untouched. */
static size_t signal_keys(const struct relay_terminal *t, char *buf, size_t len)
{
  struct termios tio;
  if (t->keys_fd < 0 || tcgetattr(t->tty, &tio) < 0 || !(tio.c_lflag & ISIG))
    return len;
  static const struct {
    int cc;
    unsigned char sig;
  } keys[] = {{VINTR, SIGINT}, {VQUIT, SIGQUIT}, {VSUSP, SIGTSTP}};
  size_t kept = 0;
  for (size_t i = 0; i < len; i++) {
    bool key = false;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
      if (tio.c_cc[keys[k].cc] != _POSIX_VDISABLE && (cc_t)buf[i] == tio.c_cc[keys[k].cc]) {
        send(t->keys_fd, &keys[k].sig, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        key = true;
      }
    if (!key)
      buf[kept++] = buf[i];
  }
  return kept;
}

/* The witness's loop: fd 0 the terminal (its controlling one), 3 the keys.
 * The foreground group is the session's say: signalled only while its leader
 * is a process of this session (gVisor's TIOCSPGRP takes only a group of the
 * session, but the group may have ended since and its id gone elsewhere;
 * gVisor reuses no id a group or session holds, and hands ids out in turn). */
static _Noreturn void witness(void)
{
  static const int ignored[] = {SIGINT, SIGQUIT, SIGTSTP, SIGHUP, SIGTTIN, SIGTTOU};
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
    signal(ignored[i], SIG_IGN); /* its own group may be made the foreground one */
  pid_t sid = getsid(0);
  for (;;) {
    unsigned char sig;
    ssize_t got = recv(3, &sig, 1, 0);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      _exit(0);
    pid_t fg = tcgetpgrp(0);
    if ((sig == SIGINT || sig == SIGQUIT || sig == SIGTSTP) && fg > 1 && getsid(fg) == sid)
      kill(-fg, sig);
  }
}

int handoff_keys(int keys[2])
{
  keys[0] = keys[1] = -1;
  if (!handoff || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, keys) == 0)
    return 0;
  keys[0] = keys[1] = -1;
  return -1;
}

int handoff_start_witness(int keys_fd)
{
  pid_t mid = fork();
  if (mid == 0) { /* the middle child: its exit makes the witness init's */
    pid_t pid = fork();
    if (pid == 0) {
      if (dup2(keys_fd, 3) == 3 && close_range(4, INT_MAX, 0) == 0 && close_range(1, 2, 0) == 0 && setpgid(0, 0) == 0)
        witness();
      _exit(1);
    }
    _exit(pid < 0 ? errno : 0);
  }
  int st;
  if (mid < 0 || waitpid(mid, &st, 0) < 0)
    return -1;
  errno = WIFEXITED(st) ? WEXITSTATUS(st) : EINVAL;
  return errno == 0 ? 0 : -1;
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

/* Whether init closed the end socket: the process has ended. */
static bool ended(const struct relay_terminal *t)
{
  char c;
  ssize_t got = read(t->end_fd, &c, 1);
  return !(got < 0 && (errno == EAGAIN || errno == EINTR));
}

_Noreturn void handoff_relay(struct relay_copy *copies, size_t n, struct relay_terminal *t)
{
  /* per copy what it waits for; the size socket; the end socket; per copy that ends the relay, its `to` while
   * idle, whose reader letting go (the host's, of an exec's output) ends the relay at once, not at the next
   * write: a silent process then loses its terminal, as when the host held the terminal's master */
  struct pollfd p[2 * RELAY_COPIES_MAX + 2];
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
      p[n + 2 + i] = (struct pollfd){.fd = c->open && c->ends_relay && !waiting ? c->to : -1, .events = 0};
    }
    sizes = sizes && take_sizes(t);
    p[n] = (struct pollfd){.fd = sizes ? t->size_fd : -1, .events = POLLIN};
    p[n + 1] = (struct pollfd){.fd = t != NULL ? t->end_fd : -1, .events = POLLIN}; /* -1: none */
    if (poll(p, 2 * n + 2, -1) < 0 && errno != EINTR)
      _exit(1);
    for (size_t i = 0; i < n; i++)
      if ((p[n + 2 + i].revents & (POLLERR | POLLHUP)) != 0)
        _exit(0);
    if (p[n + 1].revents != 0 && ended(t))
      for (size_t i = 0; i < n; i++)
        if (copies[i].ends_relay)
          drain(&copies[i]);
  }
}
