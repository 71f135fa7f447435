/* init.c: sandbox-init, pid 1 of a sandbox.
 *
 *   sandbox-init [OPTION]...
 *
 * The options are the table in main (opts.h), which makes the usage line too.
 *
 * Inherited fds (fds.h): 0 /dev/null, 1 and 2 a host log, 3 the listening
 * SOCK_SEQPACKET socket, 4 and 5 the entrypoint's stdout and stderr, 6
 * (optional) the write end of the supervisor's event pipe, 7 (optional) the
 * supervisor's network handshake socket (netsync.c), 8 the configuration:
 * the sandbox's environment, the entrypoint's argv and the volumes to check
 * (initconfig.h).  Nothing of it comes from init's own environment or argv.
 * With --handoff (gVisor) they arrive over stdin instead (init_handoff.h).
 *
 * Serves protocol.h requests on the listener: starts processes, reports their
 * exit, enforces per-process deadlines, reaps every orphan, and exits when the
 * entrypoint does (taking the pid namespace with it) or when idle. */
#define _GNU_SOURCE 1
#include <errno.h>        /* errno */
#include <fcntl.h>        /* open, fcntl, O_* */
#include <limits.h>       /* INT_MAX: gVisor refuses a larger close_range bound (EINVAL) */
#include <poll.h>         /* poll */
#include <signal.h>       /* signal, sigprocmask */
#include <stdio.h>        /* snprintf */
#include <stdlib.h>       /* exit, malloc, realloc, free, strtoul */
#include <string.h>       /* strcmp */
#include <sys/prctl.h>    /* prctl, PR_SET_DUMPABLE */
#include <sys/resource.h> /* getrlimit, setrlimit, RLIMIT_NOFILE */
#include <sys/signalfd.h> /* signalfd */
#include <sys/stat.h>     /* chmod */
#include <sys/socket.h>   /* accept4 */
#include <sys/syscall.h>  /* SYS_pidfd_open */
#include <unistd.h>       /* close, close_range, chdir, read */

#include "caps.h"
#include "fdutil.h"
#include "fds.h"
#include "init.h"
#include "init_handoff.h"
#include "initconfig.h"
#include "mkdirs.h"
#include "netsync.h"
#include "opts.h"
#include "proto.h"
#include "seccomp.h"
#include "spawn.h"
#include "util.h"

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

static struct conn **conns;
/* sigfd, listener, entrypoint terminal, each conn's socket, then the start pipes of those in starting:
 * no more entries than open fds, as poll requires (EINVAL past RLIMIT_NOFILE) */
static struct pollfd *pfds;
static struct conn **starting;
static size_t nconns, conns_cap;

static int sigfd;
char **sandbox_env;
int event_fd = -1;
int64_t idle_ms;
int64_t last_activity;
int64_t accept_resume;
size_t exec_slots;
char exec_limit_why[160];
size_t nlive;

void conn_drop(struct conn *c)
{
  close(c->fd);
  c->fd = -1;
  if (c->start_fd >= 0)
    close(c->start_fd);
  c->start_fd = -1;
  if (c->file >= 0)
    close(c->file);
  c->file = -1;
  nlive--;
  children_forget_conn(c);
  accept_resume = 0; /* an fd came free */
}

void reply_body(struct conn *c, uint16_t type, const void *body, size_t len, int passfd)
{
  if (proto_send(c->fd, type, body, len, passfd) == 0)
    return;
  /* The kernel's bound on this uid's descriptors in flight, which sandbox code shares
   * (spawn.c, children_nofile): an error that says so, not a hang-up that reads as our end. */
  if (passfd >= 0 && errno == ETOOMANYREFS &&
      proto_send_error(c->fd, ETOOMANYREFS, "the kernel refused to pass a descriptor: too many in flight") == 0)
    return;
  conn_drop(c);
}

void reply(struct conn *c, uint16_t type, int passfd)
{
  reply_body(c, type, NULL, 0, passfd);
}

void reply_error(struct conn *c, int err, const char *why)
{
  if (proto_send_error(c->fd, err, why) < 0)
    conn_drop(c);
}

static void handle_signals(void)
{
  struct signalfd_siginfo si;
  while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si)
    if (si.ssi_signo != SIGCHLD)
      exit(128 + (int)si.ssi_signo); /* SIGTERM/SIGINT: the namespace goes with us */
  reap();
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
  struct pollfd *p = realloc(pfds, (2 * cap + 3) * sizeof *p);
  if (p == NULL)
    return false;
  pfds = p;
  c = realloc(starting, cap * sizeof *c);
  if (c == NULL)
    return false;
  starting = c;
  conns_cap = cap;
  return true;
}

static void handle_conn(struct conn *c);

static bool accepting(void)
{
  return accept_resume == 0 && nlive < exec_slots + ACCEPT_SLACK;
}

static void accept_conns(void)
{
  while (accepting()) {
    int fd = handoff ? handoff_accept() : accept4(FD_LISTEN, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
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
    *c = (struct conn){.fd = fd, .start_fd = -1, .file = -1};
    conns[nconns++] = c;
    nlive++;
    /* A client sends its request right after connecting: serve it now rather
     * than after another poll (if it has not arrived, poll will see it).  Not
     * with every exec slot taken: the next poll first sees the hang-ups of
     * connections the client closed before this one, which free slots. */
    if (nlive <= exec_slots)
      handle_conn(c);
  }
}

/* The requests: every type init serves, what proto_recv has checked of it
 * (the body's size and the fds it carries; a request it refuses gets EPROTO
 * and loses its connection), who serves it, and why it is safe to serve.
 *
 *   type               body; fds                 handler (file)
 *   EXEC               psb_exec + strings; 3     handle_exec (init_exec.c)
 *   ENTRY_STDIN        none; 0 or 1              handle_entry_stdin (init_entry.c)
 *   ENTRY_STDIN_CLOSE  none; 0                   handle_entry_stdin_close (init_entry.c)
 *   OPEN               psb_open + path; 0        handle_open (init_fs.c)
 *   FSOP               psb_fsop + path; 0 or 1   handle_fsop (init_fs.c)
 *   PIDFD              none; 0                   handle_pidfd (here)
 *   FILE               psb_file (+ data); 0      handle_file (init_fs.c)
 *   anything else      refused: EPROTO "unknown request type" (proto.c)
 *
 * The listener is reachable only from the host (agent.sock in the sandbox
 * directory); no sandbox process holds it (close-on-exec, init not dumpable).
 * Whoever connects, nothing a request asks for reaches past the sandbox:
 *   EXEC    runs a program inside, with the sandbox's environment, caps and
 *           seccomp filter, in its own session; the strings are bounded by
 *           the datagram (proto_parse_exec), the timeout kills only its group.
 *   ENTRY_STDIN, ENTRY_STDIN_CLOSE  hand out or close the entrypoint's stdin,
 *           which init made for that (a pipe, or with --pty the terminal);
 *           or copy a pipe the client sent into it, in a process of its own
 *           (init_entry.c), so that an entrypoint that does not read blocks
 *           only that process.
 *   OPEN, FSOP  act as the sandbox's user on a path resolved in the sandbox's
 *           root: nothing a process in it could not do itself.  Flags and mode
 *           are masked to what protocol.h allows; O_NONBLOCK keeps a planted
 *           FIFO from blocking pid 1; LIST and WATCH replies are bounded.
 *   FILE    reads, writes or seeks the regular file the connection's own
 *           OPEN holds (--handoff only), one chunk of PSB_FILE_CHUNK at most.
 *   PIDFD   a pidfd of init, for the host to join the sandbox's namespaces
 *           (mount_image).  Joining them takes capabilities over them, which
 *           only their owner (the caller) has; signalling init takes the
 *           right to kill it, and pidfd_getfd ptrace access, as without it.
 * With --handoff (gVisor) OPEN is relayed over its connection (FILE) and the
 * other requests answered with a descriptor are refused (init_handoff.h).
 * And none can stall pid 1: every reply is sent MSG_DONTWAIT (a client that
 * does not read is dropped), and every received fd is closed on every path. */
static void handle_pidfd(struct conn *c)
{
  int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  if (fd < 0) {
    reply_error(c, errno, "pidfd_open");
    return;
  }
  /* The connection's one reply (protocol.h): closing it here, not at the
   * client's hang-up, keeps init's fd count flat however late init polls. */
  reply(c, PSB_REP_FD, fd);
  close(fd);
  if (c->fd >= 0)
    conn_drop(c);
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
  if (handoff && handoff_refuses(&req)) {
    reply_error(c, EPROTONOSUPPORT, HANDOFF_REFUSED_WHY);
    proto_close_fds(&req);
    return;
  }
  switch (req.type) {
  case PSB_REQ_EXEC:
    handle_exec(c, &req);
    break;
  case PSB_REQ_ENTRY_STDIN:
    handle_entry_stdin(c, &req);
    break;
  case PSB_REQ_ENTRY_STDIN_CLOSE:
    handle_entry_stdin_close(c);
    break;
  case PSB_REQ_OPEN:
    handle_open(c, &req);
    break;
  case PSB_REQ_FSOP:
    handle_fsop(c, &req);
    break;
  case PSB_REQ_PIDFD:
    handle_pidfd(c);
    break;
  case PSB_REQ_FILE:
    handle_file(c, &req);
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
    snprintf(exec_limit_why, sizeof exec_limit_why, "it already runs %zu execs, the most a sandbox runs at once",
             exec_slots);
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
  close_range(FD_EVENT + 1, INT_MAX, 0);
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
  raise_fd_limit();
  spawn_init();
  if (!conns_reserve())
    die("out of memory");
}

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

/* --dir and --chmod, MODE PATH each, in order. */
static char *dirs[3 * MAX_DIRS];
static size_t ndirs;

static void root_dir(const struct opt *o, char **values)
{
  if (ndirs == MAX_DIRS)
    usage_die("more than %d --dir and --chmod", MAX_DIRS);
  char **d = dirs + 3 * ndirs++;
  d[0] = (char *)o->name, d[1] = values[0], d[2] = values[1];
}

/* bwrap's --devpts-options (caps.h): checked here, before anything is done with them. */
static const char *devpts_options;

static void devpts_option(const struct opt *o, char **values)
{
  const char *why = caps_devpts_refused(values[0]);
  if (why != NULL)
    usage_die("bad %s (%s): %s", o->name, why, values[0]);
  devpts_options = values[0];
}

int main(int argc, char **argv)
{
  bool pty = false;
  const char *cwd = NULL, *sandbox_id = NULL;
  uint64_t idle = 0;
  struct opt table[] = {
      /* The sandbox's id: only there so that the runner's command line names it. */
      {.name = "--sandbox", .values = "ID", .kind = OPT_STRING, .to = &sandbox_id},
      {.name = "--idle-timeout-ms", .values = "N", .kind = OPT_NUMBER, .to = &idle, .max = UINT32_MAX},
      {.name = "--pty", .values = NULL, .kind = OPT_FLAG, .to = &pty},
      /* bwrap's: the options, max= the bound, that /dev/pts is remounted with (caps.h) */
      {.name = "--devpts-options", .values = "OPTIONS", .kind = OPT_CALL, .call = devpts_option},
      {.name = "--dir", .values = "MODE PATH", .kind = OPT_CALL, .call = root_dir, .nvalues = 2, .many = true},
      {.name = "--chmod", .values = "MODE PATH", .kind = OPT_CALL, .call = root_dir, .nvalues = 2, .many = true},
      {.name = "--chdir", .values = "PATH", .kind = OPT_STRING, .to = &cwd},
      /* Its fds and connections arrive over stdin (init_handoff.h): gVisor passes it no others. */
      {.name = "--handoff", .values = NULL, .kind = OPT_FLAG, .to = &handoff},
      {.name = NULL},
  };
  const struct opts opts = {table, NULL};
  int i = opts_parse(&opts, argv);
  if (i < argc)
    opts_usage_die(&opts, "unexpected argument: %s", argv[i]);
  idle_ms = (int64_t)idle;
  /* First of all, while nothing else runs in the sandbox: the one use of CAP_SYS_ADMIN, then
   * every capability beyond the kept ones gone, from init and from all the sandbox's processes. */
  if (devpts_options != NULL)
    caps_bound_ptys(devpts_options);
  caps_limit();
  if (handoff)
    handoff_receive();
  struct init_config config;
  init_config_read(FD_INIT_CONFIG, &config);
  close_range(FD_INIT_CONFIG + 1, INT_MAX, 0); /* nothing else of the host's reaches the sandbox */
  sandbox_env = config.env;
  init_config_check_volumes(&config); /* before anything is made in them */
  make_root_dirs(dirs, ndirs, cwd);

  /* Before anything is served: the entrypoint and every exec inherit it. */
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
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
      pfds[3 + k] = (struct pollfd){.fd = conns[k]->fd, .events = POLLIN};
      if (conns[k]->start_fd >= 0)
        starting[m++] = conns[k];
    }
    for (size_t j = 0; j < m; j++)
      pfds[3 + n + j] = (struct pollfd){.fd = starting[j]->start_fd, .events = POLLIN};
    int r = poll(pfds, 3 + n + m, poll_timeout(now_ms()));
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
    for (size_t j = 0; j < m; j++)
      if (pfds[3 + n + j].revents && starting[j]->start_fd >= 0) /* not one reap() saw end meanwhile */
        exec_started(starting[j]);
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
