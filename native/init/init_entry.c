/* init_entry.c: sandbox-init's entrypoint: starting it, its terminal (--pty),
 * whose output the main loop copies into the stdout pipe, and its stdin, which
 * clients take or feed through a relay (ENTRY_STDIN) and close
 * (ENTRY_STDIN_CLOSE). */
#define _GNU_SOURCE 1
#include <errno.h>      /* errno, EAGAIN, EINTR, ENOENT */
#include <fcntl.h>      /* open, fcntl, O_* */
#include <stdio.h>      /* dprintf */
#include <stdlib.h>     /* exit, posix_openpt, grantpt, unlockpt, ptsname_r */
#include <string.h>     /* strerror */
#include <sys/ioctl.h>  /* ioctl, TIOCSWINSZ, struct winsize */
#include <sys/socket.h> /* socketpair, MSG_DONTWAIT */
#include <unistd.h>     /* close, pipe2, read, write */

#include "env.h"
#include "fds.h"
#include "handoff.h"
#include "init.h"
#include "init_handoff.h"
#include "spawn.h"
#include "util.h"

/* The entrypoint's stdin is kept parked: in flight on a socket pair of init's own (SCM_RIGHTS), taken
 * back only while a request uses it.  Every child init forks holds a copy of init's descriptors until its
 * exec (spawn.c), and sandbox code can stop one there: a copy of the pipe's write end would hold back the
 * end of input write_eof() gives; a copy of the socket pair holds none of it (red13). */
static int entry_stdin = -1; /* while in hand */
static bool stdin_parked;
static int stdin_park[2] = {-1, -1};
static int entry_keys = -1; /* --pty under gVisor: its relays' end of the terminal's keys socket */
int entry_tty = -1;
bool entry_tty_hungup;
pid_t entry_pid;

/* A terminal from the sandbox's own devpts, of size *ws: its master, with the
 * terminal end in *slave (both close-on-exec), or -1 with errno set.  For
 * --pty (the entrypoint's: its output, stdout and stderr merged as on Modal,
 * is copied by the main loop into the stdout file; the master is what
 * ENTRY_STDIN hands out) and exec's PSB_EXEC_FLAG_PTY. */
int open_terminal(const struct winsize *ws, int *slave)
{
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  char name[64];
  *slave = -1;
  if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0 && ptsname_r(master, name, sizeof name) == 0 &&
      (*slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) >= 0 && ioctl(master, TIOCSWINSZ, ws) == 0)
    return master;
  int err = errno;
  if (*slave >= 0)
    close(*slave);
  if (master >= 0)
    close(master);
  errno = err;
  return -1;
}

/* What was read from the terminal and not yet taken by the stdout pipe, which
 * is non-blocking: the supervisor reads it, but pid 1 must never wait on it. */
static char tty_buf[65536];
static size_t tty_len, tty_sent;

/* Moves what the entrypoint wrote to its terminal into the stdout pipe;
 * false once nothing is waiting (or the pipe is full: see tty_pending). */
bool copy_terminal_output(void)
{
  if (tty_sent == tty_len) {
    ssize_t n = read(entry_tty, tty_buf, sizeof tty_buf);
    if (n <= 0) {
      /* EIO: the terminal's last user closed it.  Stop polling, but keep the
       * master open until the entrypoint is reaped: closing the last master
       * hangs the terminal up, and an entrypoint between closing its fds and
       * exiting would die of that SIGHUP instead of reporting its own status. */
      if (n == 0 || (errno != EAGAIN && errno != EINTR))
        entry_tty_hungup = true;
      return false;
    }
    tty_len = (size_t)n;
    tty_sent = 0;
  }
  ssize_t w = write(FD_ENTRY_OUT, tty_buf + tty_sent, tty_len - tty_sent);
  if (w < 0 && errno != EAGAIN && errno != EINTR)
    tty_sent = tty_len; /* the supervisor is gone: the sandbox is ending */
  else if (w > 0)
    tty_sent += (size_t)w;
  return tty_sent == tty_len;
}

bool tty_pending(void)
{
  return tty_sent < tty_len;
}

/* The entrypoint's stdin in hand (-1: it has none, or it was closed). */
static int take_stdin(void)
{
  if (stdin_parked && handoff_recv(stdin_park[0], &entry_stdin, 1, MSG_DONTWAIT) != 1)
    entry_stdin = -1; /* cannot happen: it was sent on a socket only init holds */
  stdin_parked = false;
  return entry_stdin;
}

/* Back in flight, if it is in hand; kept in hand if it cannot be sent (only a stopped child could then
 * hold it). */
static void park_stdin(void)
{
  if (entry_stdin >= 0 && handoff_send(stdin_park[1], &entry_stdin, 1, MSG_DONTWAIT) == 0) {
    close(entry_stdin);
    entry_stdin = -1;
    stdin_parked = true;
  }
}

void start_entrypoint(char **argv, bool pty)
{
  int p[2], keys[2] = {-1, -1};
  if (pty) {
    static const struct winsize ws = {.ws_row = 24, .ws_col = 80};
    if ((entry_tty = open_terminal(&ws, &p[0])) < 0) /* ENOSPC's line and exit 1: records.ENTRY_TERMINAL_ENOSPC */
      pdie("allocating a terminal");
    if ((p[1] = fcntl(entry_tty, F_DUPFD_CLOEXEC, 0)) < 0)
      pdie("dup");
    fcntl(entry_tty, F_SETFL, O_NONBLOCK);
    fcntl(FD_ENTRY_OUT, F_SETFL, fcntl(FD_ENTRY_OUT, F_GETFL) | O_NONBLOCK);
    if (handoff_keys(keys) < 0)
      pdie("socketpair");
  } else if (pipe2(p, O_CLOEXEC) < 0) {
    pdie("pipe");
  }
  struct spawn_args a = {
      .argv = argv,
      .envp = sandbox_env,
      .path = env_get(sandbox_env, "PATH"),
      .cwd_fd = -1,
      .fds = {p[0], pty ? p[0] : FD_ENTRY_OUT, pty ? p[0] : FD_ENTRY_ERR},
      .pty = pty,
      .keys_fd = keys[1],
  };
  int err = spawn(&a, &entry_pid, NULL);
  if (err != 0) {
    dprintf(FD_ENTRY_ERR, "sandbox-init: %s: %s\n", argv[0], strerror(err));
    exit(spawn_failure_code(err));
  }
  close(p[0]);
  if (keys[1] >= 0)
    close(keys[1]);
  entry_stdin = p[1];
  entry_keys = keys[0];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, stdin_park) < 0)
    pdie("socketpair");
  park_stdin();
}

void handle_entry_stdin(struct conn *c, struct request *req)
{
  if (take_stdin() < 0) {
    reply_error(c, ENOENT, "the entrypoint has no open stdin");
  } else if (req->nfds == 0) {
    reply(c, PSB_REP_FD, entry_stdin); /* the receiver gets its own copy */
  } else {
    /* A relay copies the client's pipe into the entrypoint's stdin until either side closes; into
     * its terminal, it turns the keys ISIG makes signals into signals (handoff_relay). */
    pid_t pid = handoff_fork_relay((int[]){req->fds[0], entry_stdin, entry_keys}, entry_keys >= 0 ? 3 : 2);
    if (pid == 0) {
      static struct relay_copy in = {.from = 0, .to = 1, .ends_relay = true, .open = true};
      struct relay_terminal t = {.size_fd = -1, .tty = 1, .end_fd = -1, .keys_fd = entry_keys >= 0 ? 2 : -1};
      handoff_relay(&in, 1, entry_tty >= 0 ? &t : NULL);
    }
    if (pid < 0)
      reply_error(c, errno, "fork");
    else
      reply(c, PSB_REP_OK, -1);
  }
  park_stdin();
  proto_close_fds(req);
}

void handle_entry_stdin_close(struct conn *c)
{
  if (handoff && entry_tty >= 0) { /* refused before anything is done: the client says why (initclient.py) */
    reply_error(c, EPROTONOSUPPORT, HANDOFF_NO_EOF_WHY);
    return;
  }
  if (take_stdin() >= 0 && entry_tty >= 0) {
    ssize_t unused = write(entry_stdin, "\x04", 1); /* a terminal's end of input is ^D */
    (void)unused;
  }
  if (entry_stdin >= 0) {
    close(entry_stdin);
    entry_stdin = -1;
  }
  reply(c, PSB_REP_OK, -1);
}
