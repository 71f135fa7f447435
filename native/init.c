/* init.c: sandbox-init, pid 1 of a sandbox.
 *
 *   sandbox-init [--sandbox ID] [--idle-timeout-ms N] [--pty] [--dir|--chmod MODE PATH]... [--chdir PATH]
 *
 * Inherited fds (fds.h): 0 /dev/null, 1 and 2 a host log, 3 the listening
 * SOCK_SEQPACKET socket, 4 and 5 the entrypoint's stdout and stderr, 6
 * (optional) the write end of the supervisor's event pipe, 7 (optional) the
 * supervisor's network handshake socket (netsync.c), 8 the configuration:
 * the sandbox's environment, the entrypoint's argv and the volumes to check
 * (initconfig.h).  Nothing of it comes from init's own environment or argv.
 *
 * Serves protocol.h requests on the listener: starts processes, reports their
 * exit, enforces per-process deadlines, reaps every orphan, and exits when the
 * entrypoint does (taking the pid namespace with it) or when idle. */
#define _GNU_SOURCE 1
#include <dirent.h>       /* opendir, readdir */
#include <errno.h>        /* errno */
#include <fcntl.h>        /* open, fcntl, O_*, AT_* */
#include <limits.h>       /* INT_MAX */
#include <poll.h>         /* poll */
#include <signal.h>       /* kill, signal, sigprocmask */
#include <stdio.h>        /* dprintf, snprintf */
#include <stdlib.h>       /* exit, malloc, realloc, free */
#include <string.h>       /* strcmp, strerror, memcpy */
#include <sys/ioctl.h>    /* ioctl, TIOCSWINSZ, struct winsize */
#include <sys/prctl.h>    /* prctl, PR_SET_DUMPABLE */
#include <sys/resource.h> /* getrlimit, setrlimit, RLIMIT_NOFILE */
#include <sys/signalfd.h> /* signalfd */
#include <sys/stat.h>     /* mkdir */
#include <sys/socket.h>   /* accept4 */
#include <sys/wait.h>     /* waitpid, W* */
#include <unistd.h>       /* close, close_range, pipe2, faccessat, write */

#include "caps.h"
#include "env.h"
#include "fdutil.h"
#include "fds.h"
#include "initconfig.h"
#include "mkdirs.h"
#include "netsync.h"
#include "proto.h"
#include "seccomp.h"
#include "spawn.h"
#include "util.h"
#include "watch.h"

const char *const progname = "sandbox-init";

/* --dir and --chmod options taken: RunnerInputs.init_dirs() passes at most four. */
#define MAX_DIRS 6

/* How long accept() rests after running out of fds or memory. */
#define ACCEPT_BACKOFF_MS 100

/* Concurrent execs: each holds one connection, so one fd, until its client
 * hangs up.  Fewer when the fd limit allows fewer (docs/ARCHITECTURE.md). */
#define MAX_EXECS 16384
/* fds kept for everything but connections: stdio, listener, signalfd, the
 * entrypoint's, a request's three, and the few a handler opens for a moment. */
#define FD_RESERVE 64
/* Connections accepted past the limit, so that those clients hear why (an
 * error reply) instead of waiting in the listener's backlog. */
#define ACCEPT_SLACK 16

struct conn {
  int fd;    /* -1 once dropped; freed at the end of the poll round */
  pid_t pid; /* the process this connection started, until it is reaped */
};

struct child {
  pid_t pid;
  int64_t deadline; /* CLOCK_MONOTONIC ms; 0: none, or already enforced */
  bool timed_out;
  struct conn *conn; /* NULL once the client went away */
};

static struct conn **conns;
static struct pollfd *pfds; /* sigfd, listener, entrypoint terminal, then one per conn */
static size_t nconns, conns_cap;

static struct child *children;
static size_t nchildren, children_cap;

static int sigfd;
static char **sandbox_env; /* the sandbox's environment, from the configuration */
static int event_fd = -1;
static int entry_stdin = -1;
static int entry_tty = -1; /* --pty: the terminal's master, copied to the stdout pipe */
static bool entry_tty_hungup;
static pid_t entry_pid;
static int64_t idle_ms;       /* 0: no idle timeout */
static int64_t last_activity; /* last request or exec exit */
static int64_t accept_resume; /* 0: accepting */
static size_t exec_slots;     /* MAX_EXECS, or what the fd limit allows */
static char exec_limit_why[160];
static size_t nlive;          /* connections open */

static void conn_drop(struct conn *c)
{
  close(c->fd);
  c->fd = -1;
  nlive--;
  for (size_t i = 0; i < nchildren; i++)
    if (children[i].conn == c)
      children[i].conn = NULL;
  accept_resume = 0; /* an fd came free */
}

static void reply(struct conn *c, uint16_t type, int passfd)
{
  if (proto_send(c->fd, type, NULL, 0, passfd) < 0)
    conn_drop(c);
}

static void reply_error(struct conn *c, int err, const char *why)
{
  if (proto_send_error(c->fd, err, why) < 0)
    conn_drop(c);
}

static bool idle_armed(void)
{
  return idle_ms > 0 && nchildren == 0 && entry_pid == 0;
}

/* --pty: a terminal from the sandbox's own devpts for the entrypoint.  Its
 * output (stdout and stderr merged, as on Modal) is copied by the main loop
 * into the stdout file; the master is what ENTRY_STDIN hands out. */
static int open_terminal(int *slave)
{
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  char name[64];
  if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof name) != 0)
    pdie("allocating a terminal");
  if ((*slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
    pdie("open %s", name);
  struct winsize ws = {.ws_row = 24, .ws_col = 80};
  ioctl(master, TIOCSWINSZ, &ws);
  return master;
}

/* What was read from the terminal and not yet taken by the stdout pipe, which
 * is non-blocking: the supervisor reads it, but pid 1 must never wait on it. */
static char tty_buf[65536];
static size_t tty_len, tty_sent;

/* Moves what the entrypoint wrote to its terminal into the stdout pipe;
 * false once nothing is waiting (or the pipe is full: see tty_pending). */
static bool copy_terminal_output(void)
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

static bool tty_pending(void)
{
  return tty_sent < tty_len;
}

static void start_entrypoint(char **argv, bool pty)
{
  int p[2];
  if (pty) {
    entry_tty = open_terminal(&p[0]);
    if ((p[1] = fcntl(entry_tty, F_DUPFD_CLOEXEC, 0)) < 0)
      pdie("dup");
    fcntl(entry_tty, F_SETFL, O_NONBLOCK);
    fcntl(FD_ENTRY_OUT, F_SETFL, fcntl(FD_ENTRY_OUT, F_GETFL) | O_NONBLOCK);
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
  };
  int err = spawn(&a, &entry_pid);
  if (err != 0) {
    dprintf(FD_ENTRY_ERR, "sandbox-init: %s: %s\n", argv[0], strerror(err));
    exit(spawn_failure_code(err));
  }
  close(p[0]);
  entry_stdin = p[1];
}

static void reap(void)
{
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
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
      last_activity = now_ms();
      if (ch.conn == NULL)
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
      if (proto_send_exited(ch.conn->fd, kind, value) < 0)
        conn_drop(ch.conn);
      break;
    }
    /* Anything else was an orphan reparented to us: reaping is all it needs. */
  }
}

static void handle_signals(void)
{
  struct signalfd_siginfo si;
  while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si)
    if (si.ssi_signo != SIGCHLD)
      exit(128 + (int)si.ssi_signo); /* SIGTERM/SIGINT: the namespace goes with us */
  reap();
}

static int poll_timeout(int64_t now)
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

static void run_timers(int64_t now)
{
  for (size_t i = 0; i < nchildren; i++) {
    struct child *ch = &children[i];
    if (ch->deadline != 0 && now >= ch->deadline) {
      /* The child leads its own process group (setsid): take the group. */
      kill(-ch->pid, SIGKILL);
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

static bool conns_reserve(void)
{
  if (nconns < conns_cap)
    return true;
  size_t cap = conns_cap ? conns_cap * 2 : 16;
  struct conn **c = realloc(conns, cap * sizeof *c);
  if (c == NULL)
    return false;
  conns = c;
  struct pollfd *p = realloc(pfds, (cap + 3) * sizeof *p);
  if (p == NULL)
    return false;
  pfds = p;
  conns_cap = cap;
  return true;
}

static bool accepting(void)
{
  return accept_resume == 0 && nlive < exec_slots + ACCEPT_SLACK;
}

static void accept_conns(void)
{
  while (accepting()) {
    int fd = accept4(FD_LISTEN, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN) {
        /* EMFILE and friends: the listener stays readable, so rest instead
         * of spinning. */
        pwarnf("accept");
        accept_resume = now_ms() + ACCEPT_BACKOFF_MS;
      }
      return;
    }
    struct conn *c = malloc(sizeof *c);
    if (c == NULL || !conns_reserve()) {
      warnf("out of memory: dropping a connection");
      free(c);
      close(fd);
      accept_resume = now_ms() + ACCEPT_BACKOFF_MS;
      return;
    }
    *c = (struct conn){.fd = fd};
    conns[nconns++] = c;
    nlive++;
  }
}

/* Tells the client its process could not start, the way a shell would:
 * "pysandbox: exec: <what><name>: <strerror>" on its stderr, then STARTED
 * with pid 0 and EXITED 127 (126 when found but not executable). */
static void exec_failed(struct conn *c, int errfd, int err, const char *what, const char *name)
{
  char buf[512];
  int n = snprintf(buf, sizeof buf, "pysandbox: exec: %s%s: %s\n", what, name, strerror(err));
  if (n >= (int)sizeof buf) {
    n = sizeof buf - 1;
    buf[n - 1] = '\n';
  }
  if (n > 0)
    write_nonblock(errfd, buf, (size_t)n);
  if (proto_send_started(c->fd, 0) < 0 ||
      proto_send_exited(c->fd, PSB_EXIT_CODE, spawn_failure_code(err)) < 0)
    conn_drop(c);
}

static void handle_exec(struct conn *c, struct request *req)
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

  /* The cwd is checked here because a failing chdir inside posix_spawn
   * returns the same ENOENT/EACCES as a failing exec.  Running in the fd that
   * was checked keeps the two from disagreeing. */
  int cwd_fd = -1;
  char **envp = NULL;
  if (x.cwd[0] != '\0') {
    cwd_fd = open(x.cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd_fd < 0 || faccessat(cwd_fd, "", X_OK, AT_EACCESS | AT_EMPTY_PATH) < 0) {
      exec_failed(c, req->fds[2], errno, "cannot chdir to ", x.cwd);
      goto out;
    }
  }
  envp = env_overlay(sandbox_env, x.envp);
  if (envp == NULL) {
    exec_failed(c, req->fds[2], ENOMEM, "", x.argv[0]);
    goto out;
  }
  struct spawn_args a = {
    .argv = x.argv,
    .envp = envp,
    .path = env_get(envp, "PATH"),
    .cwd_fd = cwd_fd,
    .fds = {req->fds[0], req->fds[1], req->fds[2]},
    .pty = (x.flags & PSB_EXEC_FLAG_PTY) != 0,
  };
  pid_t pid;
  err = spawn(&a, &pid);
  if (err == EAGAIN) { /* no fork: the pids limit, not the command */
    reply_error(c, EAGAIN, "it runs as many processes as its pids limit allows (PYSANDBOX_PIDS_LIMIT)");
    goto out;
  }
  if (err != 0) {
    exec_failed(c, req->fds[2], err, "", x.argv[0]);
    goto out;
  }
  int64_t deadline = x.timeout_ms != 0 ? now_ms() + x.timeout_ms : 0;
  children[nchildren++] = (struct child){.pid = pid, .deadline = deadline, .conn = c};
  c->pid = pid;
  if (proto_send_started(c->fd, (uint32_t)pid) < 0)
    conn_drop(c); /* the process keeps running; only its report is lost */
out:
  free(envp);
  if (cwd_fd >= 0)
    close(cwd_fd);
  proto_close_fds(req);
  proto_free_exec(&x);
}

/* O_NONBLOCK so that a FIFO planted at the path cannot block pid 1; the
 * client clears it on the descriptor it receives. */
static void handle_open(struct conn *c, const struct request *req)
{
  struct psb_open o;
  memcpy(&o, req->body, sizeof o);
  const char *path = (const char *)req->body + sizeof o;
  if ((o.flags & ~PSB_OPEN_FLAGS_ALLOWED) != 0 || (o.mode & ~07777u) != 0 ||
      strlen(path) + 1 != req->body_len - sizeof o) {
    reply_error(c, EINVAL, "bad open flags, mode or path");
    return;
  }
  int fd = open(path, (int)o.flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, (mode_t)o.mode);
  if (fd < 0) {
    reply_error(c, errno, path);
    return;
  }
  last_activity = now_ms();
  reply(c, PSB_REP_FD, fd);
  close(fd);
}

/* LIST replies are bounded so that one datagram carries them whatever the
 * socket's buffer size. */
#define LIST_MAX (200 * 1024)

static void reply_listing(struct conn *c, const char *path)
{
  static char out[LIST_MAX];
  DIR *d = opendir(path);
  if (d == NULL) {
    reply_error(c, errno, path);
    return;
  }
  size_t used = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    size_t len = strlen(e->d_name) + 1;
    if (used + 1 + len > sizeof out) {
      closedir(d);
      reply_error(c, E2BIG, "directory too large to list in one reply");
      return;
    }
    out[used++] = (char)e->d_type;
    memcpy(out + used, e->d_name, len);
    used += len;
  }
  closedir(d);
  if (proto_send(c->fd, PSB_REP_OK, out, used, -1) < 0)
    conn_drop(c);
}

static void reply_stat(struct conn *c, const char *path)
{
  struct {
    struct psb_stat st;
    char target[PATH_MAX + 1];
  } out = {0};
  struct stat st;
  if (lstat(path, &st) < 0) {
    reply_error(c, errno, path);
    return;
  }
  out.st = (struct psb_stat){
    .mode = st.st_mode,
    .uid = st.st_uid,
    .gid = st.st_gid,
    .size = (uint64_t)st.st_size,
    .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
  };
  ssize_t n = S_ISLNK(st.st_mode) ? readlink(path, out.target, PATH_MAX) : 0;
  size_t len = sizeof out.st + (n > 0 ? (size_t)n + 1 : 0);
  if (proto_send(c->fd, PSB_REP_OK, &out, len, -1) < 0)
    conn_drop(c);
}

static void reply_watch(struct conn *c, const char *path, bool recursive)
{
  static char out[LIST_MAX];
  size_t used = 0;
  int fd = watch_open(path, recursive, out, sizeof out, &used);
  if (fd < 0) {
    reply_error(c, errno, errno == E2BIG ? "too many directories to watch" : path);
    return;
  }
  if (proto_send(c->fd, PSB_REP_FD, out, used, fd) < 0)
    conn_drop(c);
  close(fd);
}

static void handle_fsop(struct conn *c, const struct request *req)
{
  struct psb_fsop o;
  memcpy(&o, req->body, sizeof o);
  const char *path = (const char *)req->body + sizeof o;
  if (strlen(path) + 1 != req->body_len - sizeof o || (o.mode & ~07777u) != 0) {
    reply_error(c, EINVAL, "bad fsop path or mode");
    return;
  }
  last_activity = now_ms();
  int r;
  switch (o.op) {
  case PSB_FSOP_MKDIR:
    r = mkdir(path, (mode_t)o.mode);
    break;
  case PSB_FSOP_UNLINK:
    r = unlink(path);
    break;
  case PSB_FSOP_RMDIR:
    r = rmdir(path);
    break;
  case PSB_FSOP_LIST:
    reply_listing(c, path);
    return;
  case PSB_FSOP_STAT:
    reply_stat(c, path);
    return;
  case PSB_FSOP_WATCH:
    reply_watch(c, path, (o.mode & PSB_WATCH_RECURSIVE) != 0);
    return;
  default:
    reply_error(c, EINVAL, "unknown fsop");
    return;
  }
  if (r < 0)
    reply_error(c, errno, path);
  else
    reply(c, PSB_REP_OK, -1);
}

static void handle_signal(struct conn *c, const struct request *req)
{
  uint32_t signo;
  memcpy(&signo, req->body, sizeof signo);
  if (signo < 1 || signo > 64)
    reply_error(c, EINVAL, "signal number out of range");
  else if (c->pid == 0)
    reply_error(c, ESRCH, "no running process");
  else if (kill(c->pid, (int)signo) < 0)
    reply_error(c, errno, "kill");
}

static void handle_conn(struct conn *c)
{
  struct request req;
  int err;
  const char *why;
  enum proto_result r = proto_recv(c->fd, &req, &err, &why);
  if (r == PROTO_AGAIN)
    return;
  if (r == PROTO_EOF) {
    conn_drop(c);
    return;
  }
  last_activity = now_ms();
  if (r == PROTO_BAD) {
    proto_send_error(c->fd, err, why);
    conn_drop(c);
    return;
  }
  switch (req.type) {
  case PSB_REQ_EXEC:
    handle_exec(c, &req);
    break;
  case PSB_REQ_SIGNAL:
    handle_signal(c, &req);
    break;
  case PSB_REQ_ENTRY_STDIN:
    if (entry_stdin < 0)
      reply_error(c, ENOENT, "the entrypoint has no open stdin");
    else
      reply(c, PSB_REP_FD, entry_stdin); /* the receiver gets its own copy */
    break;
  case PSB_REQ_ENTRY_STDIN_CLOSE:
    if (entry_stdin >= 0 && entry_tty >= 0) {
      ssize_t unused = write(entry_stdin, "\x04", 1); /* a terminal's end of input is ^D */
      (void)unused;
    }
    if (entry_stdin >= 0) {
      close(entry_stdin);
      entry_stdin = -1;
    }
    reply(c, PSB_REP_OK, -1);
    break;
  case PSB_REQ_PING:
    reply(c, PSB_REP_OK, -1);
    break;
  case PSB_REQ_OPEN:
    handle_open(c, &req);
    break;
  case PSB_REQ_FSOP:
    handle_fsop(c, &req);
    break;
  }
}

/* The creator's soft RLIMIT_NOFILE (often 1024) would cap concurrent execs:
 * take the hard limit (the sandbox's processes inherit it too, as in Docker). */
static void raise_fd_limit(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    pdie("getrlimit");
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
    pwarnf("setrlimit RLIMIT_NOFILE");
  else if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    pdie("getrlimit");
  exec_slots = MAX_EXECS;
  if (rl.rlim_cur < (rlim_t)MAX_EXECS + FD_RESERVE)
    exec_slots = rl.rlim_cur > 2 * FD_RESERVE ? (size_t)rl.rlim_cur - FD_RESERVE : FD_RESERVE;
  if (exec_slots == MAX_EXECS)
    snprintf(exec_limit_why, sizeof exec_limit_why,
             "it already runs %zu execs, the most a sandbox runs at once", exec_slots);
  else
    snprintf(exec_limit_why, sizeof exec_limit_why,
             "it already runs %zu execs, the most its fd limit allows (RLIMIT_NOFILE %llu, the hard "
             "limit of the process that created the sandbox, less %d)",
             exec_slots, (unsigned long long)rl.rlim_cur, FD_RESERVE);
}

static void setup(void)
{
  /* Keep 0..2 occupied so that fds received from clients are always >= 3
   * and the dup2s in spawn never clobber one another. */
  for (int fd = 0; fd < 3; fd++)
    if (!fd_is_open(fd) && open("/dev/null", O_RDWR) != fd)
      pdie("open /dev/null");
  close_range(FD_EVENT + 1, ~0U, 0);
  if (!fd_is_open(FD_LISTEN))
    die("fd %d (the listener) is not open", FD_LISTEN);
  for (int fd = FD_LISTEN; fd <= FD_EVENT; fd++)
    fd_set_cloexec(fd, true);
  if (fd_is_open(FD_EVENT))
    event_fd = FD_EVENT;
  int fl = fcntl(FD_LISTEN, F_GETFL);
  if (fl < 0 || fcntl(FD_LISTEN, F_SETFL, fl | O_NONBLOCK) < 0)
    pdie("listener");

  /* Not dumpable: sandbox processes run as the same uid but must not reach
   * the clients' fds or memory through /proc/1. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
    pdie("PR_SET_DUMPABLE");

  /* Children get SIG_DFL for everything through POSIX_SPAWN_SETSIGDEF. */
  signal(SIGPIPE, SIG_IGN);
  signal(SIGCHLD, SIG_DFL); /* SIG_IGN would auto-reap and hide exit codes */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
    pdie("sigprocmask");
  sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0)
    pdie("signalfd");
  spawn_init();
  raise_fd_limit();
  if (!conns_reserve())
    die("out of memory");
}

#define USAGE "usage: sandbox-init [--sandbox ID] [--idle-timeout-ms N] [--pty] [--dir|--chmod MODE PATH]... [--chdir PATH]"

/* --dir, --chmod and --chdir, in order: what no runner does (RunnerInputs.init_dirs)
 * (mkdirs.h). --chmod is for a directory nsjail made as a mount point's parent. */
static void make_root_dirs(char **dirs, size_t ndirs, const char *cwd)
{
  for (size_t k = 0; k < ndirs; k++) {
    char **d = dirs + 3 * k, *end;
    unsigned long mode = strtoul(d[1], &end, 8);
    if (*end != '\0' || mode > 07777)
      usage_die("bad %s mode: %s", d[0], d[1]);
    if ((strcmp(d[0], "--dir") == 0 ? make_dirs(d[2], (mode_t)mode) : chmod(d[2], (mode_t)mode)) < 0)
      pdie("%s %s", d[0], d[2]);
  }
  if (cwd != NULL && chdir(cwd) < 0)
    pdie("chdir %s", cwd);
}

int main(int argc, char **argv)
{
  int i = 1;
  bool pty = false;
  char *dirs[3 * MAX_DIRS];
  size_t ndirs = 0;
  const char *cwd = NULL;
  for (; i < argc; i++) {
    uint64_t v;
    if (strcmp(argv[i], "--pty") == 0) {
      pty = true;
    } else if ((strcmp(argv[i], "--dir") == 0 || strcmp(argv[i], "--chmod") == 0) && i + 2 < argc &&
               ndirs < MAX_DIRS) {
      char **d = dirs + 3 * ndirs++;
      d[0] = argv[i], d[1] = argv[i + 1], d[2] = argv[i + 2];
      i += 2;
    } else if (strcmp(argv[i], "--sandbox") == 0 && i + 1 < argc) {
      i++; /* the sandbox's id: only there so the runner's command line names it */
    } else if (strcmp(argv[i], "--chdir") == 0 && i + 1 < argc) {
      cwd = argv[++i];
    } else if (strcmp(argv[i], "--idle-timeout-ms") == 0 && i + 1 < argc) {
      if (!parse_uint(argv[++i], UINT32_MAX, &v))
        usage_die("bad --idle-timeout-ms: %s", argv[i]);
      idle_ms = (int64_t)v;
    } else {
      usage_die(USAGE);
    }
  }
  struct init_config config;
  init_config_read(FD_INIT_CONFIG, &config);
  close_range(FD_INIT_CONFIG + 1, ~0U, 0); /* nothing else of the host's reaches the sandbox */
  sandbox_env = config.env;
  init_config_check_volumes(&config); /* before anything is made in them */
  make_root_dirs(dirs, ndirs, cwd);

  /* First, before anything is served: the entrypoint and every exec inherit them. */
  caps_limit();
  if (seccomp_install() < 0)
    pdie("installing the seccomp filter");
  netsync_wait(FD_NET_SYNC); /* the network is connected before anything runs */
  setup();
  if (config.argv[0] != NULL)
    start_entrypoint(config.argv, pty);
  if (entry_tty < 0)
    close(FD_ENTRY_OUT);
  close(FD_ENTRY_ERR);
  last_activity = now_ms();

  for (;;) {
    size_t n = nconns;
    pfds[0] = (struct pollfd){.fd = sigfd, .events = POLLIN};
    pfds[1] = (struct pollfd){.fd = accepting() ? FD_LISTEN : -1, .events = POLLIN};
    pfds[2] = tty_pending() ? (struct pollfd){.fd = FD_ENTRY_OUT, .events = POLLOUT}
                            : (struct pollfd){.fd = entry_tty_hungup ? -1 : entry_tty, .events = POLLIN};
    for (size_t k = 0; k < n; k++)
      pfds[3 + k] = (struct pollfd){.fd = conns[k]->fd, .events = POLLIN};
    int r = poll(pfds, n + 3, poll_timeout(now_ms()));
    if (r < 0) {
      if (errno != EINTR)
        pdie("poll");
      continue;
    }
    if (pfds[0].revents)
      handle_signals();
    run_timers(now_ms());
    if (pfds[1].revents)
      accept_conns();
    if (pfds[2].revents && entry_tty >= 0 && (tty_pending() || !entry_tty_hungup))
      copy_terminal_output();
    for (size_t k = 0; k < n; k++)
      if (conns[k]->fd >= 0 && pfds[3 + k].revents)
        handle_conn(conns[k]);

    size_t kept = 0;
    for (size_t k = 0; k < nconns; k++) {
      if (conns[k]->fd >= 0)
        conns[kept++] = conns[k];
      else
        free(conns[k]);
    }
    nconns = kept;
  }
}
