/* init_exec.c: sandbox-init's processes: the child table, the timers (exec
 * deadlines, the idle timeout, the accept backoff), EXEC and reaping, which
 * reports each exec's exit on the connection that started it. */
#define _GNU_SOURCE 1
#include <errno.h>      /* errno, EBUSY, EMFILE, ENOMEM, EAGAIN */
#include <fcntl.h>      /* open, fcntl, O_*, AT_* */
#include <limits.h>     /* INT_MAX */
#include <signal.h>     /* kill, SIGKILL */
#include <stdio.h>      /* snprintf */
#include <stdlib.h>     /* exit, realloc, free */
#include <string.h>     /* strerror */
#include <sys/ioctl.h>  /* struct winsize */
#include <sys/socket.h> /* recv, send, socketpair, MSG_DONTWAIT, MSG_NOSIGNAL */
#include <sys/wait.h>   /* waitpid, W* */
#include <unistd.h>     /* close, faccessat, write */

#include "env.h"
#include "init_handoff.h"
#include "fdutil.h"
#include "fds.h"
#include "init.h"
#include "proto.h"
#include "spawn.h"
#include "util.h"

struct child {
  pid_t pid;
  int64_t deadline; /* CLOCK_MONOTONIC ms; 0: none, or already enforced */
  bool timed_out;
  struct conn *conn; /* NULL once the client went away */
  int relay_end;     /* PSB_EXEC_FLAG_PTY: signalled and closed when it ends, to end its relay (end_relay); else -1 */
  pid_t relay;       /* and that relay, while it runs; else 0 */
};

static struct child *children;
static size_t nchildren, children_cap;

static bool idle_armed(void)
{
  return idle_ms > 0 && nchildren == 0 && entry_pid == 0;
}

void children_forget_conn(const struct conn *c)
{
  for (size_t i = 0; i < nchildren; i++)
    if (children[i].conn == c)
      children[i].conn = NULL;
}

/* Tells a pty exec's relay that its process ended: a byte, then the close.  Not the close
 * alone: a child of init that sandbox code stopped before its exec holds a copy of the socket
 * (spawn.c: a detached child), and that copy would hold back the end of file. */
static void end_relay(int relay_end)
{
  if (relay_end < 0)
    return;
  ssize_t unused = send(relay_end, "e", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)unused;
  close(relay_end);
}

void reap(void)
{
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    handoff_reaped(pid);
    for (size_t i = 0; i < nchildren; i++)
      if (children[i].relay == pid) { /* its terminal is gone: a hang-up, which gVisor's does not send */
        if (handoff) {
          kill(-children[i].pid, SIGHUP);
          kill(-children[i].pid, SIGCONT);
        }
        children[i].relay = 0;
      }
    if (pid == entry_pid) {
      if (entry_tty >= 0) { /* the entrypoint's last words: now waiting is fine */
        fcntl(FD_ENTRY_OUT, F_SETFL, fcntl(FD_ENTRY_OUT, F_GETFL) & ~O_NONBLOCK);
        while (copy_terminal_output() || tty_pending())
          ;
      }
      exit(WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st));
    }
    for (size_t i = 0; i < nchildren; i++) {
      if (children[i].pid != pid)
        continue;
      struct child ch = children[i];
      children[i] = children[--nchildren];
      end_relay(ch.relay_end);
      last_activity = now_ms();
      if (ch.conn != NULL && ch.conn->start_fd >= 0)
        exec_started(ch.conn); /* it ended before its exec (its own report said why) or before we polled */
      if (ch.conn == NULL || ch.conn->fd < 0)
        break;
      ch.conn->pid = 0;
      uint32_t kind = PSB_EXIT_CODE;
      int32_t value = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
      if (ch.timed_out) {
        kind = PSB_EXIT_TIMEOUT;
        value = 0;
      } else if (WIFSIGNALED(st)) {
        kind = PSB_EXIT_SIGNAL;
        value = WTERMSIG(st);
      }
      /* EXITED is the connection's last message (protocol.h): closing it now,
       * rather than on the client's hang-up, spares init a wake-up per exec. */
      proto_send_exited(ch.conn->fd, kind, value);
      conn_drop(ch.conn);
      break;
    }
    /* Anything else was an orphan reparented to us: reaping is all it needs. */
  }
}

int poll_timeout(int64_t now)
{
  int64_t next = INT64_MAX;
  for (size_t i = 0; i < nchildren; i++)
    if (children[i].deadline != 0 && children[i].deadline < next)
      next = children[i].deadline;
  if (idle_armed() && last_activity + idle_ms < next)
    next = last_activity + idle_ms;
  if (accept_resume != 0 && accept_resume < next)
    next = accept_resume;
  if (next == INT64_MAX)
    return -1;
  return next <= now ? 0 : next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

void run_timers(int64_t now)
{
  for (size_t i = 0; i < nchildren; i++) {
    struct child *ch = &children[i];
    if (ch->deadline != 0 && now >= ch->deadline) {
      /* The child leads its own process group (setsid): take the group, and the child itself,
       * which sandbox code may have stopped before its setsid (then it leads no group). */
      kill(-ch->pid, SIGKILL);
      kill(ch->pid, SIGKILL);
      ch->timed_out = true;
      ch->deadline = 0;
    }
  }
  if (idle_armed() && now >= last_activity + idle_ms) {
    if (event_fd >= 0) {
      ssize_t unused = write(event_fd, "I", 1);
      (void)unused;
    }
    exit(0);
  }
  if (accept_resume != 0 && now >= accept_resume)
    accept_resume = 0;
}

/* STARTED, once the process exec'd (or ended: then EXITED follows). */
void exec_started(struct conn *c)
{
  close(c->start_fd);
  c->start_fd = -1;
  if (proto_send_started(c->fd, (uint32_t)c->pid) < 0)
    conn_drop(c); /* the process keeps running; only its report is lost */
}

/* Tells the client its process could not start, the way a shell would:
 * "pysandbox: exec: <what><name>: <strerror>" on its stderr, then STARTED
 * with pid 0 and EXITED 127 (126 when found but not executable). */
static void exec_failed(struct conn *c, int errfd, int err, const char *what, const char *name)
{
  spawn_say_failure(errfd, err, what, name);
  if (proto_send_started(c->fd, 0) == 0)
    proto_send_exited(c->fd, PSB_EXIT_CODE, spawn_failure_code(err));
  conn_drop(c); /* EXITED is its last message */
}

/* The relay of PSB_EXEC_FLAG_PTY (protocol.h): fd 0 the client's input, 1 its
 * output, 2 the size socket, 3 the terminal's master, 4 the end socket, 5
 * with keys the witness's socket (init_handoff.h).  The input's end stops only
 * the input: write_eof leaves the terminal open, as closing one of its writers
 * would. */
static _Noreturn void relay_terminal(bool keys)
{
  static struct relay_copy copies[2] = {
      {.from = 0, .to = 3, .open = true},
      {.from = 3, .to = 1, .ends_relay = true, .open = true},
  };
  static struct relay_terminal t = {.size_fd = 2, .tty = 3, .end_fd = 4, .keys_fd = -1};
  if (keys)
    t.keys_fd = 5;
  handoff_relay(copies, 2, &t);
}

static void close_open(const int *fds, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

/* PSB_EXEC_FLAG_PTY: a terminal whose master a relay holds, sized by
 * the first datagram already on the size socket.  Returns its terminal end,
 * in *relay the relay, in *end the socket to close when the process ends and
 * in *keys its witness's socket (or -1), or -1 with the reply sent. */
static int terminal(struct conn *c, const struct request *req, pid_t *relay, int *end, int *keys)
{
  struct winsize ws;
  if (recv(req->fds[2], &ws, sizeof ws, MSG_DONTWAIT) != (ssize_t)sizeof ws)
    ws = (struct winsize){.ws_row = 24, .ws_col = 80};
  int slave, ends[2] = {-1, -1}, witness[2], master = open_terminal(&ws, &slave);
  if (master < 0) {
    reply_error(c, errno, "allocating a terminal");
    return -1;
  }
  pid_t pid = -1;
  /* a socket, not a pipe: sandbox root under gVisor can open a pipe of the relay's through /proc/<relay>/fd,
   * never a socket (ENXIO); its end must be init's word alone */
  if (handoff_keys(witness) == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) == 0) {
    int fds[] = {req->fds[0], req->fds[1], req->fds[2], master, ends[0], witness[0]};
    pid = handoff_fork_relay(fds, witness[0] >= 0 ? 6 : 5);
    if (pid == 0)
      relay_terminal(witness[0] >= 0);
  }
  int err = errno;
  close_open((int[]){master, ends[0], witness[0]}, 3);
  if (pid < 0) {
    close_open((int[]){slave, ends[1], witness[1]}, 3);
    reply_error(c, err, err == EMFILE ? "too many terminals relayed out of the sandbox at once" : "fork");
    return -1;
  }
  *relay = pid;
  *end = ends[1];
  *keys = witness[1];
  return slave;
}

void handle_exec(struct conn *c, struct request *req)
{
  if (c->pid != 0) {
    proto_close_fds(req);
    reply_error(c, EBUSY, "a process is already running on this connection");
    return;
  }
  if (nlive > exec_slots) { /* the others hold every slot */
    proto_close_fds(req);
    reply_error(c, EMFILE, exec_limit_why);
    if (c->fd >= 0)
      conn_drop(c);
    return;
  }
  struct exec_request x;
  const char *why;
  int err = proto_parse_exec(req, &x, &why);
  if (err != 0) {
    proto_close_fds(req);
    proto_send_error(c->fd, err, why);
    conn_drop(c);
    return;
  }
  if (nchildren == children_cap) {
    size_t cap = children_cap ? children_cap * 2 : 16;
    struct child *ch = realloc(children, cap * sizeof *ch);
    if (ch == NULL) {
      proto_close_fds(req);
      proto_free_exec(&x);
      reply_error(c, ENOMEM, "out of memory");
      return;
    }
    children = ch;
    children_cap = cap;
  }

  int slave = -1, relay_end = -1, keys = -1;
  pid_t relay = 0;
  if ((x.flags & PSB_EXEC_FLAG_PTY) != 0 && (slave = terminal(c, req, &relay, &relay_end, &keys)) < 0) {
    proto_close_fds(req);
    proto_free_exec(&x);
    return;
  }
  int *fds = slave >= 0 ? (int[]){slave, slave, slave} : req->fds;

  /* The cwd is checked here because a failing chdir inside posix_spawn
   * returns the same ENOENT/EACCES as a failing exec.  Running in the fd that
   * was checked keeps the two from disagreeing. */
  int cwd_fd = -1;
  char **envp = NULL;
  if (x.cwd[0] != '\0') {
    cwd_fd = open(x.cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd_fd < 0 || faccessat(cwd_fd, "", X_OK, AT_EACCESS | AT_EMPTY_PATH) < 0) {
      exec_failed(c, fds[2], errno, "cannot chdir to ", x.cwd);
      goto out;
    }
  }
  envp = env_overlay(sandbox_env, x.envp);
  if (envp == NULL) {
    exec_failed(c, fds[2], ENOMEM, "", x.argv[0]);
    goto out;
  }
  struct spawn_args a = {
      .argv = x.argv,
      .envp = envp,
      .path = env_get(envp, "PATH"),
      .cwd_fd = cwd_fd,
      .fds = {fds[0], fds[1], fds[2]},
      .pty = slave >= 0,
      .keys_fd = keys,
  };
  pid_t pid;
  int started = -1;
  /* Not waiting for the exec, except under gVisor: there a child set up while init goes on costs
   * the Sentry more host threads (ptrace stubs), which its pids limit counts, and 64 terminals
   * would end the whole sandbox (docs/RUNNERS.md).  There a stopped child holds init until the
   * host's bound. */
  err = spawn(&a, &pid, handoff ? NULL : &started);
  if (err == EAGAIN) { /* no fork: the pids limit, not the command */
    reply_error(c, EAGAIN, "it runs as many processes as its pids limit allows (PYSANDBOX_PIDS_LIMIT)");
    goto out;
  }
  if (err != 0) {
    exec_failed(c, fds[2], err, "", x.argv[0]);
    goto out;
  }
  int64_t deadline = x.timeout_ms != 0 ? now_ms() + x.timeout_ms : 0;
  children[nchildren++] =
      (struct child){.pid = pid, .deadline = deadline, .conn = c, .relay_end = relay_end, .relay = relay};
  relay_end = -1;
  c->pid = pid;
  c->start_fd = started;
  if (started < 0 && proto_send_started(c->fd, (uint32_t)pid) < 0)
    conn_drop(c); /* the process keeps running; only its report is lost */
out:
  free(envp);
  if (cwd_fd >= 0)
    close(cwd_fd);
  if (slave >= 0)
    close(slave);
  if (keys >= 0)
    close(keys);
  end_relay(relay_end); /* it did not start: the relay sends what the terminal holds (the error) and ends */
  proto_close_fds(req);
  proto_free_exec(&x);
}
