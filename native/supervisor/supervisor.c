/* supervisor.c: sandbox-supervisor, one per sandbox on the host (like conmon).
 *
 *   sandbox-supervisor OPTION... -- RUNNER ARGV...
 *
 * The options are the table in parse_args (opts.h), which makes the usage line too.
 *
 * Inherited fds (fds.h): 0 /dev/null (or, with --confirm-fd 0, a pipe from
 * the creator that carries 'g' once the sandbox is registered), 1 and 2 the
 * sandbox's supervisor.log, 3 the listener, 4 and 5 the files for the
 * entrypoint's stdout and stderr, 8 init's configuration and optionally 9 the
 * runner's; 3, 8 and 9 are only passed on to the runner.
 *
 * Starts RUNNER (bwrap or nsjail) with a fixed environment (util.h: host_env),
 * the event pipe's write end as fd 6 and pipes as fds 4 and 5, whose output it
 * copies into the files, keeping each within --output-max bytes (output.h);
 * enforces the sandbox timeout, turns signals into a kill, reaps everything the sandbox
 * leaves (as a subreaper), removes the --cleanup paths and finally writes
 * DIR/exit.  The exit file is the last thing it does: whoever sees it knows
 * that no sandbox process is left and that teardown is complete.
 *
 * The runner child makes the sandbox's network namespace (netns.h), which the
 * runner keeps.  With --net-helper it hands it to us on the handshake socket,
 * which RUNNER gets as fd 7 and passes on to init: netns.c connects the
 * namespace while the runner sets up the rest, init reports there once that
 * setup is over, and waits (netsync.c) until we release it.
 *
 * With --handoff, RUNNER (gVisor's runsc, which passes the sandbox only its
 * stdio) gets none of fds 3-8: its stdin is a socket over which init receives
 * them and every connection we accept on the listener, which we keep
 * (common/handoff.h).  Under gVisor sandbox code can open init's descriptors
 * through /proc/1/fd (its kernel ignores non-dumpable), but not a socket: so
 * init holds no host file or pipe it could reopen.  The event channel is a
 * socketpair, and the runner's stdout and stderr (init's, and runsc's own
 * messages) a socket we copy into supervisor.log, keeping the first
 * --log-max bytes (output.h). 
 *
 * --cgroup DIR (one per cgroup v1 hierarchy, one on v2): the runner starts in
 * it (v2) or joins it before anything else (cgroup.c); at teardown it is emptied and removed, and its OOM
 * kills, cpu time and peak memory go into the exit record.  --nproc N: the
 * RLIMIT_NPROC fallback when no pids cgroup is available. */
#define _GNU_SOURCE 1
#include <errno.h>        /* errno */
#include <fcntl.h>        /* open, openat, fcntl, O_* */
#include <grp.h>          /* setgroups */
#include <limits.h>       /* INT_MAX */
#include <poll.h>         /* poll */
#include <sched.h>        /* setns, CLONE_NEWUSER */
#include <signal.h>       /* kill, signal, sigprocmask */
#include <stdio.h>        /* snprintf, renameat */
#include <stdlib.h>       /* calloc, exit */
#include <stdnoreturn.h>  /* noreturn */
#include <string.h>       /* strcmp, strchr, strrchr, memchr */
#include <sys/prctl.h>    /* prctl, PR_* */
#include <sys/resource.h> /* getrlimit, setrlimit, RLIMIT_NPROC, RLIMIT_NOFILE */
#include <sys/signalfd.h> /* signalfd */
#include <sys/stat.h>     /* fstatat */
#include <sys/socket.h>   /* socketpair, send */
#include <sys/wait.h>     /* waitpid, W* */
#include <time.h>         /* clock_gettime */
#include <unistd.h>       /* fork, execv, close, close_range, pipe2, set*id */

#include "cgroup.h"
#include "fdutil.h"
#include "fds.h"
#include "handoff.h"
#include "netns.h"
#include "opts.h"
#include "output.h"
#include "rmtree.h"
#include "spare.h"
#include "stage.h"
#include "userns.h"
#include "util.h"

const char *const progname = "sandbox-supervisor";

static struct {
  const char *dir;
  int64_t timeout_ms;  /* 0: none */
  uint64_t output_max; /* bytes of each output stream kept */
  bool as_user;
  uid_t uid;
  gid_t gid;
  const char *stage;
  const char *stage_overlay; /* overlayfs's options for the root in the stage (stage.h) */
  const char *stage_tmpfs;   /* or tmpfs's */
  struct stage_bind *binds;
  size_t nbinds;
  const char **cleanup;
  size_t ncleanup;
  int confirm_fd;           /* -1: none */
  const char *confirmed_by; /* a file in dir whose existence confirms, as 'g' does */
  struct net_options net;
  struct userns_plan userns; /* no ranges: the runner makes its own user namespace */
  const char **cgroups;
  size_t ncgroups;
  uint64_t nproc;   /* 0: no RLIMIT_NPROC */
  bool handoff;     /* init's fds and connections go over the runner's stdin */
  uint64_t log_max; /* --handoff: bytes of the runner's log kept */
  char **runner;
} opt;

/* --net-helper: the handshake socket with init (ours and the runner's ends),
 * and the pipe whose closing ends the helper. */
static int net_sync[2] = {-1, -1}, net_exit_w = -1;

static int sigfd, event_fd, dir_fd;

/* --handoff: the socketpair, ours and the runner's stdin, out of the 0..9 range;
 * the runner's stdout and stderr (ours and its ends), and its copy into the log. */
static int handoff_sock[2] = {-1, -1}, log_sock[2] = {-1, -1};
static struct output runner_log = {.pipe = -1};

/* The entrypoint's stdout and stderr: the pipes' write ends, given to the
 * runner as FD_ENTRY_OUT/ERR, and their copies into the files. */
static int entry_pipe_w[2] = {-1, -1};
static struct output entry_out[2];

/* --spare: the namespaces it made beforehand, for the runner child (spare.h). */
static struct spare spare = {.userns = -1, .netns = -1};

/* The first reason the sandbox ended wins. */
static const char *status;
static int status_code;

static void set_status(const char *s, int code)
{
  if (status == NULL) {
    status = s;
    status_code = code;
  }
}

/* --stage-bind SRC=NAME: SRC is bound into the stage as NAME. */
static void stage_bind(const struct opt *o, char **values)
{
  char *src = values[0];
  char *eq = strrchr(src, '=');
  const char *name = eq != NULL ? eq + 1 : "";
  (void)o;
  if (*name == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    usage_die("--stage-bind needs SRC=NAME with NAME a plain file name: %s", src);
  *eq = '\0';
  opt.binds[opt.nbinds++] = (struct stage_bind){.src = src, .name = name};
}

/* --stage-check NAME=DEV:INO: the earlier --stage-bind NAME is a volume. */
static void stage_check(const struct opt *o, char **values)
{
  char *arg = values[0];
  char *eq = strrchr(arg, '='), *colon = eq != NULL ? strchr(eq, ':') : NULL;
  uint64_t dev, ino;
  (void)o;
  if (colon == NULL)
    usage_die("--stage-check needs NAME=DEV:INO: %s", arg);
  *eq = *colon = '\0';
  if (!parse_uint(eq + 1, UINT64_MAX, &dev) || !parse_uint(colon + 1, UINT64_MAX, &ino))
    usage_die("bad --stage-check: %s", arg);
  for (size_t k = 0; k < opt.nbinds; k++)
    if (strcmp(opt.binds[k].name, arg) == 0) {
      opt.binds[k].checked = true;
      opt.binds[k].dev = (dev_t)dev;
      opt.binds[k].ino = (ino_t)ino;
      return;
    }
  usage_die("--stage-check names no earlier --stage-bind: %s", arg);
}

static void cleanup_path(const struct opt *o, char **values)
{
  (void)o;
  opt.cleanup[opt.ncleanup++] = values[0];
}

static void confirmed_by(const struct opt *o, char **values)
{
  (void)o;
  opt.confirmed_by = values[0];
  if (strchr(opt.confirmed_by, '/') != NULL)
    usage_die("--confirmed-by takes a file name in --dir: %s", opt.confirmed_by);
}

/* --net-forward HOSTPORT:PORT */
static void net_forward(const struct opt *o, char **values)
{
  uint64_t host, guest;
  char *colon = strchr(values[0], ':');
  (void)o;
  if (colon == NULL)
    usage_die("--net-forward needs HOSTPORT:PORT: %s", values[0]);
  *colon = '\0';
  if (!parse_uint(values[0], 65535, &host) || !parse_uint(colon + 1, 65535, &guest) || host == 0 || guest == 0)
    usage_die("bad --net-forward port: %s", values[0]);
  opt.net.forwards[opt.net.nforwards++] = (struct net_forward){(unsigned)host, (unsigned)guest};
}

static void userns(const struct opt *o, char **values)
{
  userns_option(&opt.userns, o->name, values[0]);
}

static void cgroup(const struct opt *o, char **values)
{
  (void)o;
  opt.cgroups[opt.ncgroups++] = values[0];
}

static void parse_args(int argc, char **argv)
{
  opt.binds = calloc((size_t)argc, sizeof *opt.binds);
  opt.cleanup = calloc((size_t)argc, sizeof *opt.cleanup);
  opt.net.forwards = calloc((size_t)argc, sizeof *opt.net.forwards);
  opt.cgroups = calloc((size_t)argc, sizeof *opt.cgroups);
  if (opt.binds == NULL || opt.cleanup == NULL || opt.net.forwards == NULL || opt.cgroups == NULL)
    die("out of memory");
  opt.net.dns = (struct dns_options){.port = 53, .qps = 200, .addresses = 4096, .min_ttl = 10, .max_ttl = 3600};
  uint64_t timeout_ms = 0, uid = 0, gid = 0, confirm_fd = 0;
  struct opt table[] = {
      {.name = "--dir", .values = "DIR", .kind = OPT_STRING, .to = &opt.dir, .required = true},
      {.name = "--timeout-ms",
       .values = "N",
       .kind = OPT_NUMBER,
       .to = &timeout_ms,
       .max = INT64_MAX / 4,
       .required = true},
      {.name = "--output-max",
       .values = "BYTES",
       .kind = OPT_NUMBER,
       .to = &opt.output_max,
       .min = 65536,
       .max = UINT64_MAX / 2,
       .required = true},
      /* At most UINT32_MAX - 1: -1 means "unchanged" to setresuid. */
      {.name = "--as-uid", .values = "U", .kind = OPT_NUMBER, .to = &uid, .max = UINT32_MAX - 1},
      {.name = "--as-gid", .values = "G", .kind = OPT_NUMBER, .to = &gid, .max = UINT32_MAX - 1},
      {.name = "--stage", .values = "STAGEDIR", .kind = OPT_STRING, .to = &opt.stage, .absolute = true},
      {.name = "--stage-bind",
       .values = "SRC=NAME",
       .kind = OPT_CALL,
       .call = stage_bind,
       .absolute = true,
       .many = true},
      {.name = "--stage-check", .values = "NAME=DEV:INO", .kind = OPT_CALL, .call = stage_check, .many = true},
      {.name = "--stage-overlay", .values = "OPTIONS", .kind = OPT_STRING, .to = &opt.stage_overlay},
      {.name = "--stage-tmpfs", .values = "OPTIONS", .kind = OPT_STRING, .to = &opt.stage_tmpfs},
      {.name = "--cleanup", .values = "PATH", .kind = OPT_CALL, .call = cleanup_path, .absolute = true, .many = true},
      {.name = "--userns-uid", .values = "IN:OUT:N", .kind = OPT_CALL, .call = userns, .many = true},
      {.name = "--userns-gid", .values = "IN:OUT:N", .kind = OPT_CALL, .call = userns, .many = true},
      {.name = "--newuidmap", .values = "PATH", .kind = OPT_CALL, .call = userns},
      {.name = "--newgidmap", .values = "PATH", .kind = OPT_CALL, .call = userns},
      {.name = "--userns-nested", .values = "N", .kind = OPT_CALL, .call = userns},
      {.name = "--confirm-fd", .values = "FD", .kind = OPT_NUMBER, .to = &confirm_fd, .max = FD_LISTEN - 1},
      {.name = "--confirmed-by", .values = "FILE", .kind = OPT_CALL, .call = confirmed_by},
      {.name = "--cgroup", .values = "DIR", .kind = OPT_CALL, .call = cgroup, .absolute = true, .many = true},
      {.name = "--handoff", .values = NULL, .kind = OPT_FLAG, .to = &opt.handoff},
      {.name = "--log-max",
       .values = "BYTES",
       .kind = OPT_NUMBER,
       .to = &opt.log_max,
       .min = 65536,
       .max = UINT64_MAX / 2},
      {.name = "--nproc", .values = "N", .kind = OPT_NUMBER, .to = &opt.nproc, .max = INT32_MAX},
      {.name = "--net-helper", .values = "SLIRP4NETNS", .kind = OPT_STRING, .to = &opt.net.helper, .absolute = true},
      {.name = "--net-dir", .values = "DIR", .kind = OPT_STRING, .to = &opt.net.dir, .absolute = true},
      {.name = "--net-filter", .values = "NFT", .kind = OPT_STRING, .to = &opt.net.nft, .absolute = true},
      {.name = "--net-rules", .values = "RULESET", .kind = OPT_STRING, .to = &opt.net.rules},
      {.name = "--net-own-stack", .values = NULL, .kind = OPT_FLAG, .to = &opt.net.own_stack},
      {.name = "--net-dns-link", .values = NULL, .kind = OPT_FLAG, .to = &opt.net.dns.link},
      {.name = "--net-forward", .values = "HOSTPORT:PORT", .kind = OPT_CALL, .call = net_forward, .many = true},
      {.name = "--net-dns-upstream", .values = "ADDRESS", .kind = OPT_STRING, .to = &opt.net.dns.upstream},
      {.name = "--net-dns-port", .values = "PORT", .kind = OPT_NUMBER, .to = &opt.net.dns.port, .min = 1, .max = 65535},
      {.name = "--net-domains", .values = "NAMES", .kind = OPT_STRING, .to = &opt.net.dns.domains},
      {.name = "--net-dns-qps", .values = "N", .kind = OPT_NUMBER, .to = &opt.net.dns.qps, .min = 1, .max = 1000000},
      {.name = "--net-dns-addresses",
       .values = "N",
       .kind = OPT_NUMBER,
       .to = &opt.net.dns.addresses,
       .min = 1,
       .max = 1000000},
      {.name = "--net-dns-min-ttl",
       .values = "SECONDS",
       .kind = OPT_NUMBER,
       .to = &opt.net.dns.min_ttl,
       .min = 1,
       .max = 86400},
      {.name = "--net-dns-max-ttl",
       .values = "SECONDS",
       .kind = OPT_NUMBER,
       .to = &opt.net.dns.max_ttl,
       .min = 1,
       .max = 604800},
      {.name = "--net-host-max", .values = "N", .kind = OPT_NUMBER, .to = &opt.net.host_max, .min = 1, .max = 1000000},
      {.name = NULL},
  };
  const struct opts opts = {table, "-- RUNNER ARGV..."};
  int i = opts_parse(&opts, argv);
  if (argv[i] == NULL || strcmp(argv[i], "--") != 0 || argv[i + 1] == NULL)
    opts_usage_die(&opts, "missing -- RUNNER ARGV...");
  opt.runner = argv + i + 1;
  if (opt.runner[0][0] != '/')
    usage_die("RUNNER must be an absolute path: %s", opt.runner[0]);
  opt.timeout_ms = (int64_t)timeout_ms;
  if (opt.handoff != (opt.log_max > 0))
    usage_die("--handoff and --log-max go together");
  bool have_uid = opts_find(&opts, "--as-uid")->given > 0, have_gid = opts_find(&opts, "--as-gid")->given > 0;
  if (have_uid != have_gid)
    usage_die("--as-uid and --as-gid go together");
  opt.as_user = have_uid;
  opt.uid = (uid_t)uid;
  opt.gid = (gid_t)gid;
  opt.confirm_fd = opts_find(&opts, "--confirm-fd")->given > 0 ? (int)confirm_fd : -1;
  if (opt.stage_overlay != NULL && opt.stage_tmpfs != NULL)
    usage_die("--stage-overlay and --stage-tmpfs exclude each other: the stage has one root");
  if ((opt.nbinds > 0 || opt.stage_overlay != NULL || opt.stage_tmpfs != NULL) && opt.stage == NULL)
    usage_die("--stage-bind, --stage-overlay and --stage-tmpfs need --stage");
  userns_check_plan(&opt.userns);
  if ((opt.net.helper != NULL) !=
          (opt.net.dir != NULL && opt.net.nft != NULL && opt.net.rules != NULL && opt.net.dns.upstream != NULL) ||
      (opt.net.nforwards > 0 && opt.net.helper == NULL))
    usage_die("--net-helper, --net-dir, --net-filter, --net-rules and --net-dns-upstream go together "
              "(and --net-forward needs them)");
  if (opt.net.own_stack && (opt.net.helper == NULL || opt.userns.nuids == 0 || !(opt.as_user || opt.userns.nested)))
    usage_die("--net-own-stack needs the network options, --userns-uid/gid and --as-uid/gid (its namespace's) "
              "or --userns-nested");
  if (opt.net.dns.link && !opt.net.own_stack)
    usage_die("--net-dns-link needs --net-own-stack: the kernel's own stack reaches the filter on loopback");
  if (opt.net.dns.min_ttl > opt.net.dns.max_ttl)
    usage_die("--net-dns-min-ttl is above --net-dns-max-ttl");
}

/* In the runner child: report errno to the parent through the exec-failed
 * pipe and give up.  quiet: the failing step already said what went wrong. */
static noreturn void child_fail(int fail_w, bool quiet, const char *what)
{
  int err = errno;
  if (!quiet)
    msg(err, "%s", what);
  ssize_t unused = write(fail_w, &err, sizeof err);
  (void)unused;
  _exit(127);
}

/* The sandbox identity, for the runner and the network helpers: with
 * --as-uid, drop root for good (userns.h: identity_drop).  -1 with errno. */
static int enter_identity(void)
{
  return opt.as_user ? identity_drop(opt.uid, opt.gid) : 0;
}

/* The --cleanup paths.  An unprivileged caller whose sandboxes have its
 * subordinate ids does not own what sandbox users other than root wrote there
 * (an image's upper directory: apt's files, a service's): it removes them from
 * a user namespace mapping those ids, in a child (userns_enter joins it for
 * good), falling back to its own rights. */
static void remove_cleanup_paths(void)
{
  pid_t child = opt.userns.newuidmap != NULL ? fork() : -1;
  if (child == 0) {
    int rc = userns_enter(&opt.userns);
    for (size_t i = 0; i < opt.ncleanup && rc == 0; i++)
      rc = rmtree(opt.cleanup[i]);
    _exit(rc == 0 ? 0 : 1);
  }
  int st = 1;
  if (child > 0)
    while (waitpid(child, &st, 0) < 0 && errno == EINTR)
      ;
  if (child < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    for (size_t i = 0; i < opt.ncleanup; i++)
      rmtree(opt.cleanup[i]);
}

/* In the runner child, once fds 4-8 are in place: sends them to init (queued
 * until it reads them), makes the socket the runner's stdin and the log's its
 * stdout and stderr, and closes 3-8, which the runner would not pass on.  9,
 * the runner's configuration, stays. */
static int hand_over(void)
{
  static const int fds[HANDOFF_NFDS] = HANDOFF_FDS;
  if (handoff_send(handoff_sock[0], fds, HANDOFF_NFDS, 0) < 0 || dup2(handoff_sock[1], 0) < 0 ||
      dup2(log_sock[1], 1) < 0 || dup2(log_sock[1], 2) < 0)
    return -1;
  return close_range(FD_LISTEN, FD_INIT_CONFIG, 0);
}

/* Hands init every connection waiting on the listener.  A connection that
 * cannot be handed over (init not reading, out of fds) is closed: its client
 * hears end of file, as when init drops one. */
static void forward_connections(void)
{
  int fd;
  while ((fd = accept4(FD_LISTEN, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0 || errno == EINTR ||
         errno == ECONNABORTED) {
    if (fd < 0)
      continue;
    if (handoff_send(handoff_sock[0], &fd, 1, MSG_DONTWAIT) < 0)
      pwarnf("handing a connection to init");
    close(fd);
  }
}

/* A socketpair out of the 0..9 range, so the runner's dup2 calls cannot clobber it. */
static void socketpair_high(int type, int out[2], const char *what)
{
  int pair[2];
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, pair) < 0)
    pdie("%s", what);
  for (int i = 0; i < 2; i++) {
    out[i] = fcntl(pair[i], F_DUPFD_CLOEXEC, 64);
    if (out[i] < 0)
      pdie("%s", what);
    close(pair[i]);
  }
}

static void open_handoff(void)
{
  socketpair_high(SOCK_SEQPACKET, handoff_sock, "handoff socket");
  socketpair_high(SOCK_STREAM, log_sock, "log socket");
  if (shutdown(log_sock[0], SHUT_WR) < 0)
    pdie("log socket");
  int fl = fcntl(FD_LISTEN, F_GETFL);
  if (fl < 0 || fcntl(FD_LISTEN, F_SETFL, fl | O_NONBLOCK) < 0)
    pdie("listener");
}

/* The stage (stage.h): its binds, then a runner's root.  -1 (said why), or 0. */
static int stage(void)
{
  if (opt.stage != NULL && stage_mounts(opt.stage, opt.binds, opt.nbinds) < 0)
    return -1;
  if (opt.stage_overlay != NULL && stage_root(opt.stage, "overlay", opt.stage_overlay) < 0)
    return -1;
  if (opt.stage_tmpfs != NULL && stage_root(opt.stage, "tmpfs", opt.stage_tmpfs) < 0)
    return -1;
  return 0;
}

static noreturn void run_runner(const sigset_t *mask, int event_w, int fail_w, pid_t parent, bool in_cgroup)
{
  /* fds 6 and 7 are about to become the event pipe and the network handshake. */
  if (fail_w >= FD_EVENT && fail_w <= FD_NET_SYNC && (fail_w = fcntl(fail_w, F_DUPFD_CLOEXEC, 64)) < 0)
    _exit(127);
  /* The sandbox writes its output into pipes we copy from, never into host files. */
  if (dup2(entry_pipe_w[0], FD_ENTRY_OUT) < 0 || dup2(entry_pipe_w[1], FD_ENTRY_ERR) < 0)
    child_fail(fail_w, false, "output pipes");
  if (sigprocmask(SIG_SETMASK, mask, NULL) < 0)
    child_fail(fail_w, false, "sigprocmask");
  if (opt.confirm_fd >= 0) { /* the creator's pipe is ours alone, not the sandbox's */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || dup2(null, opt.confirm_fd) < 0)
      child_fail(fail_w, false, "/dev/null");
  }
  for (size_t i = 0; i < opt.ncgroups && !in_cgroup; i++)
    if (cgroup_join(opt.cgroups[i]) < 0)
      child_fail(fail_w, false, opt.cgroups[i]);
  if (opt.nproc > 0 && setrlimit(RLIMIT_NPROC, &(struct rlimit){opt.nproc, opt.nproc}) < 0)
    child_fail(fail_w, false, "RLIMIT_NPROC");
  /* A self-isolating runner in the sandbox's user namespace (gVisor's runsc for
   * an unprivileged caller) is staged there, where it may mount; a root
   * caller's stage is made as root, before anything drops privileges. */
  bool root_in_userns = opt.handoff && opt.userns.nested > 0; /* gVisor for an unprivileged caller */
  /* The user namespaces' maker first: its start (a fork, an identity, an unshare) overlaps the stage's mounts. */
  struct userns_maker maker;
  bool make_userns = opt.userns.nuids > 0 && spare.userns < 0;
  if (make_userns && userns_start(&maker, &opt.userns, enter_identity, mask, true) < 0)
    child_fail(fail_w, true, NULL);
  if (!root_in_userns && stage() < 0)
    child_fail(fail_w, true, NULL);
  int userns = make_userns ? userns_finish(&maker, &opt.userns) : spare.userns;
  if (opt.userns.nuids > 0 && userns < 0)
    child_fail(fail_w, true, NULL);
  int sync = opt.net.helper != NULL ? net_sync[1] : -1;
  if (opt.net.own_stack && !root_in_userns) {
    /* The runner (runsc) runs as the caller and joins the namespace, made in the user namespace,
     * once connected (netns.h). */
    if (net_make_namespace_for_root(userns, sync) < 0)
      child_fail(fail_w, true, NULL);
  } else {
    if (enter_identity() < 0)
      child_fail(fail_w, true, NULL);
    /* The runner runs in the sandbox's user namespace, as its root, rather than
     * making its own (userns.h). */
    if (userns >= 0 && (setns(userns, CLONE_NEWUSER) < 0 || close(userns) < 0))
      child_fail(fail_w, false, "joining the sandbox's user namespace");
    /* runsc takes a caller that is not uid 0 for a rootless one, which it runs
     * without the namespaces it makes as root: it becomes the namespace's root
     * (the caller's own uid on the host, sandbox root under every runner). */
    if (root_in_userns && (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0))
      child_fail(fail_w, false, "becoming root of the sandbox's user namespace");
    if (root_in_userns && stage() < 0)
      child_fail(fail_w, true, NULL);
    /* Its network namespace, whatever the mode, made here and not by the runner: with
     * the default network, the supervisor connects it while the runner works (netns.h). */
    /* A spare's namespace the supervisor has already: nothing to send. */
    if (net_make_namespace(spare.netns, spare.netns >= 0 ? -1 : sync) < 0 ||
        (opt.net.own_stack && net_own_stack_ready(sync) < 0))
      child_fail(fail_w, true, NULL);
  }
  /* After the uid and namespace changes, which clear it.  The getppid() check closes
   * the window in which the supervisor may have died before this took effect. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    child_fail(fail_w, false, "PR_SET_PDEATHSIG");
  if (getppid() != parent)
    _exit(127);
  if ((event_w == FD_EVENT ? fd_set_cloexec(FD_EVENT, false) : dup2(event_w, FD_EVENT)) < 0)
    child_fail(fail_w, false, "event pipe");
  if (opt.net.helper != NULL && dup2(net_sync[1], FD_NET_SYNC) < 0)
    child_fail(fail_w, false, "network handshake");
  if (opt.handoff && hand_over() < 0)
    child_fail(fail_w, false, "handing init its descriptors");
  execve(opt.runner[0], opt.runner, host_env);
  msg(errno, "exec %s", opt.runner[0]);
  child_fail(fail_w, true, NULL);
}

/* Reads what init reported on the event pipe. */
static void read_events(void)
{
  char buf[16];
  ssize_t n;
  while (event_fd >= 0 && (n = read(event_fd, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return; /* EAGAIN: nothing more for now */
    }
    if (memchr(buf, 'I', (size_t)n) != NULL)
      set_status("idle_timeout", 0);
  }
  /* EOF: init is gone; stop polling the pipe. */
  if (event_fd >= 0) {
    close(event_fd);
    event_fd = -1;
  }
}

/* SIGKILL every current child of ours (listed by the kernel in
 * /proc/self/task/<tid>/children; we are single-threaded). */
static void kill_children(void)
{
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return;
  buf[n] = '\0';
  for (char *p = buf, *end; *p != '\0'; p = end) {
    long pid = strtol(p, &end, 10);
    if (end == p)
      break;
    if (pid > 0)
      kill((pid_t)pid, SIGKILL);
  }
}

/* --confirm-fd: the creator writes 'g' once the sandbox is in the registry.
 * End of file without it means the creator died first: nobody can find this
 * sandbox, so it must not live on, unless (--confirmed-by FILE) the creator
 * died just after writing the record into DIR: then everyone can find it, and
 * the record alone is the commit. */
static void read_confirmation(pid_t runner)
{
  char c = 0;
  ssize_t n = read(opt.confirm_fd, &c, 1);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  bool recorded = opt.confirmed_by != NULL && faccessat(dir_fd, opt.confirmed_by, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
  if ((n != 1 || c != 'g') && !recorded) {
    set_status("terminated", 137);
    kill(runner, SIGKILL);
  }
  close(opt.confirm_fd);
  opt.confirm_fd = -1;
}

/* The handshake socket with init (netsync.c), out of the 0..7 range so the
 * runner's dup2 calls cannot clobber it.  Whichever runner starts init (both
 * pass the fd on), its message tells us that the runner is done setting up the
 * namespaces.  A socket: send() with MSG_NOSIGNAL survives a sandbox that
 * already died. */
static void open_network_fds(void)
{
  socketpair_high(SOCK_STREAM, net_sync, "network handshake");
}

/* The network helpers count against the sandbox's limits: they join its
 * cgroups (as root, before the uid drop) and take its identity (the DNS
 * filter only the identity: net_connect). */
static int enter_sandbox(void)
{
  for (size_t i = 0; i < opt.ncgroups; i++)
    if (cgroup_join(opt.cgroups[i]) < 0) {
      pwarnf("%s", opt.cgroups[i]);
      return -1;
    }
  return enter_identity();
}

/* Starts the network helpers on the sandbox's namespace: `netns`, a spare's (taken, closed here), or
 * else the one the runner child sends before it execs the runner; so they start while the runner
 * sets up the rest.  Whether they started. */
static bool start_network(const sigset_t *mask, int netns)
{
  if (netns < 0)
    netns = fd_receive(net_sync[0]);
  bool started = netns >= 0 && net_connect(&opt.net, netns, mask, enter_sandbox, enter_identity, &net_exit_w) == 0;
  if (netns >= 0)
    close(netns);
  return started;
}

/* Init waits in the handshake until the helpers started and the runner is done (a runner with its
 * own stack starts once connected: init runs nothing before that); on failure the runner is killed
 * before init is released. */
static void connect_network(pid_t runner, bool started)
{
  if (!started || (!opt.net.own_stack && net_wait_init(net_sync[0]) < 0)) {
    warnf("the sandbox's network could not be set up");
    set_status("failed", 127);
    kill(runner, SIGKILL);
  } else {
    send(net_sync[0], "g", 1, MSG_NOSIGNAL); /* fails only if the sandbox is gone */
  }
  close(net_sync[0]);
}

/* Runs until the runner is reaped. */
static void supervise(pid_t runner, int64_t deadline)
{
  for (;;) {
    int timeout = -1;
    if (deadline != 0) {
      int64_t left = deadline - now_ms();
      if (left <= 0) {
        set_status("timeout", 124);
        kill(runner, SIGKILL);
        deadline = 0;
        continue;
      }
      timeout = left > INT_MAX ? INT_MAX : (int)left;
    }
    struct pollfd p[7] = {
        {.fd = sigfd, .events = POLLIN},
        {.fd = event_fd, .events = POLLIN},          /* ignored once -1 */
        {.fd = opt.confirm_fd, .events = POLLIN},    /* ignored once -1 */
        {.fd = entry_out[0].pipe, .events = POLLIN}, /* ignored once -1 */
        {.fd = entry_out[1].pipe, .events = POLLIN}, /* ignored once -1 */
        {.fd = opt.handoff ? FD_LISTEN : -1, .events = POLLIN},
        {.fd = runner_log.pipe, .events = POLLIN}, /* ignored once -1 */
    };
    if (poll(p, 7, timeout) < 0) {
      if (errno == EINTR)
        continue;
      pwarnf("poll");
      kill(runner, SIGKILL);
      set_status("failed", 127);
    }
    if (p[1].revents)
      read_events();
    if (p[2].revents)
      read_confirmation(runner);
    if (p[5].revents)
      forward_connections();
    if (p[6].revents)
      output_copy(&runner_log);
    for (int k = 0; k < 2; k++)
      if (p[3 + k].revents)
        output_copy(&entry_out[k]);
    struct signalfd_siginfo si;
    while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
      if (si.ssi_signo != SIGCHLD) {
        set_status("terminated", 137);
        kill(runner, SIGKILL);
      }
    }
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
      if (pid != runner)
        continue; /* an orphan reparented to us, e.g. init after bwrap died */
      /* An 'I' written just before init exited may still be in the pipe. */
      read_events();
      set_status("exited", WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st));
      return;
    }
  }
}

/* The exit record in a new exit.tmp; false (and none left) if it could not be written. */
static bool write_exit_new(int dirfd, const char *buf, int n)
{
  int fd = openat(dirfd, "exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  bool written = fd >= 0 && write_all(fd, buf, (size_t)n) == 0;
  if (fd >= 0 && close(fd) < 0)
    written = false;
  if (!written)
    unlinkat(dirfd, "exit.tmp", 0);
  return written;
}

/* The exit record over the bytes of the creator file, renamed to exit.tmp and cut to size:
 * neither needs free space (sandbox.py pads it to 512 for this: _state/records.make_sandbox_dir).
 * False (and no exit.tmp left) if it could not be written. */
static bool write_exit_over_creator(int dirfd, const char *buf, int n)
{
  if (renameat(dirfd, "creator", dirfd, "exit.tmp") < 0)
    return false;
  int fd = openat(dirfd, "exit.tmp", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  bool written = fd >= 0 && write_all(fd, buf, (size_t)n) == 0 && ftruncate(fd, n) == 0;
  if (fd >= 0 && close(fd) < 0)
    written = false;
  if (!written)
    unlinkat(dirfd, "exit.tmp", 0);
  return written;
}

static void write_exit_file(int dirfd, const struct cgroup_totals *t)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char usage[160] = ""; /* what the cgroup's controllers counted */
  size_t len = 0;
  if (t->have_oom)
    len += (size_t)snprintf(usage + len, sizeof usage - len, ", \"oom_kills\": %llu", (unsigned long long)t->oom_kills);
  if (t->have_cpu)
    len += (size_t)snprintf(usage + len, sizeof usage - len, ", \"cpu_seconds\": %llu.%06llu",
                            (unsigned long long)(t->cpu_usec / 1000000), (unsigned long long)(t->cpu_usec % 1000000));
  if (t->have_peak)
    snprintf(usage + len, sizeof usage - len, ", \"memory_peak\": %llu", (unsigned long long)t->memory_peak);
  char buf[320];
  int n = snprintf(buf, sizeof buf, "{\"status\": \"%s\", \"code\": %d, \"finished_at\": %lld.%06ld%s}\n", status,
                   status_code, (long long)ts.tv_sec, ts.tv_nsec / 1000, usage);
  /* Atomic by rename; no fsync: the record describes processes that cannot outlive a
   * host crash, and two fsyncs would double the cost of teardown.  Once the sandbox is
   * registered (record.json) nothing reads its creator file again: the record goes over
   * its bytes then, which spares a new inode (~0.3 ms of system time on ext4 without a
   * journal, docs/ARCHITECTURE.md).  Before that, the creator file tells gc that a create
   * may still be in progress, so a new file is made, and the creator's bytes are only the
   * fallback of a full disk. */
  struct stat st;
  bool registered = fstatat(dirfd, "record.json", &st, AT_SYMLINK_NOFOLLOW) == 0;
  bool written = (registered && write_exit_over_creator(dirfd, buf, n)) || write_exit_new(dirfd, buf, n) ||
      (!registered && write_exit_over_creator(dirfd, buf, n));
  if (!written || renameat(dirfd, "exit.tmp", dirfd, "exit") < 0) {
    int err = errno;
    unlinkat(dirfd, "exit.tmp", 0);
    errno = err;
    pdie("write %s/exit", opt.dir);
  }
}

/* Our helpers (a spare's too) pass descriptors (the namespaces, the DNS filter's socket) as a uid
 * sandbox code shares, whose descriptors in flight the kernel bounds by the sender's soft RLIMIT_NOFILE:
 * at the hard limit, above what sandbox code may take (native/init/spawn.c, children_nofile). */
static void raise_nofile(void)
{
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
      pwarnf("setrlimit RLIMIT_NOFILE");
  }
}

int main(int argc, char **argv)
{
  raise_nofile();
  bool spared = argc > 1 && strcmp(argv[1], "--spare") == 0;
  if (spared)
    for (argv = spare_wait(argv, &spare), argc = 0; argv[argc] != NULL; argc++)
      ;
  parse_args(argc, argv);
  /* --nproc: the kernel keeps a user namespace's RLIMIT_NPROC of its creator and bounds the host uid's
   * whole count by it; the spare made its namespaces before it knew the limit, so the runner child makes
   * them, after setting it (tests/security/test_65_red15_spare_nproc.py). */
  if (!spare_fits(&spare, opt.as_user, opt.uid, opt.gid, &opt.userns) || opt.handoff || opt.net.own_stack ||
      opt.nproc > 0)
    spare_release(&spare);
  for (int fd = FD_LISTEN; fd <= FD_INIT_CONFIG; fd = fd == FD_ENTRY_ERR ? FD_INIT_CONFIG : fd + 1)
    if (!fd_is_open(fd))
      usage_die("fd %d is not open", fd);
  /* Nothing else of the caller's reaches the sandbox (a spare kept nothing else of its creator's). */
  close_range(FD_EVENT, FD_NET_SYNC, 0);
  if (!spared)
    close_range(FD_RUNNER_CONFIG + 1, ~0U, 0);
  bool runner_config = fd_is_open(FD_RUNNER_CONFIG);
  int dirfd = dir_fd = open(opt.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    pwarnf("--dir %s", opt.dir);
    exit(2);
  }

  /* Orphans of the sandbox (init once bwrap is gone) become our children,
   * so we can reap them and know when the last one is gone. */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    pdie("PR_SET_CHILD_SUBREAPER");
  signal(SIGCHLD, SIG_DFL); /* SIG_IGN would auto-reap and hide the exit code */
  sigset_t set, oldmask;
  sigemptyset(&set);
  termination_signals(&set, true);
  sigaddset(&set, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &set, &oldmask) < 0)
    pdie("sigprocmask");
  termination_signals(&oldmask, false); /* for our children */
  sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0)
    pdie("signalfd");
  int ev[2], fp[2];
  /* Under --handoff a socket: sandbox code cannot reopen it through /proc/1/fd (see the top). */
  if ((opt.handoff ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ev) : pipe2(ev, O_CLOEXEC)) < 0 ||
      (opt.handoff && shutdown(ev[0], SHUT_WR) < 0) || pipe2(fp, O_CLOEXEC) < 0)
    pdie("pipe");
  int fl = fcntl(ev[0], F_GETFL);
  if (fl < 0 || fcntl(ev[0], F_SETFL, fl | O_NONBLOCK) < 0)
    pdie("event pipe");
  event_fd = ev[0];

  if (opt.net.helper != NULL)
    open_network_fds();
  if (opt.handoff)
    open_handoff();
  int entry_pipe_r[2];
  for (int k = 0; k < 2; k++) {
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) < 0 || (entry_pipe_r[k] = fcntl(pp[0], F_DUPFD_CLOEXEC, 64)) < 0 ||
        (entry_pipe_w[k] = fcntl(pp[1], F_DUPFD_CLOEXEC, 64)) < 0)
      pdie("output pipe");
    close(pp[0]);
    close(pp[1]);
  }

  int64_t start = now_ms();
  pid_t self = getpid();
  bool placed;
  pid_t runner = cgroup_fork(opt.cgroups, opt.ncgroups, &placed);
  if (runner == 0)
    run_runner(&oldmask, ev[1], fp[1], self, placed);
  /* The spare's network namespace is ours to connect (main's); the rest the runner child's alone:
   * no helper of ours inherits them. */
  int premade_netns = opt.net.helper != NULL ? spare.netns : -1;
  if (premade_netns >= 0)
    spare.netns = -1;
  spare_release(&spare);

  /* The listener must live only in the sandbox: if we kept it, connect()
   * would still succeed after the sandbox died and clients would hang.  With
   * --handoff it is ours until the runner is reaped. */
  if (!opt.handoff)
    close(FD_LISTEN);
  if (opt.handoff) {
    close(handoff_sock[1]);
    close(log_sock[1]);
    output_init_log(&runner_log, log_sock[0], STDERR_FILENO, "the runner's log", opt.log_max);
  }
  close(FD_INIT_CONFIG);
  if (runner_config)
    close(FD_RUNNER_CONFIG);
  static const char *const entry_names[2] = {"stdout", "stderr"};
  for (int k = 0; k < 2; k++) {
    close(entry_pipe_w[k]);
    fd_set_cloexec(FD_ENTRY_OUT + k, true); /* the files stay ours: no helper inherits them */
    output_init(&entry_out[k], entry_pipe_r[k], FD_ENTRY_OUT + k, entry_names[k], opt.output_max);
  }
  close(ev[1]);
  close(fp[1]);
  if (opt.net.helper != NULL)
    close(net_sync[1]);
  if (runner < 0) {
    pwarnf("fork");
    set_status("failed", 127);
  } else {
    int err;
    ssize_t n;
    if (opt.net.own_stack) /* the runner child execs the runner once it is connected */
      connect_network(runner, start_network(&oldmask, -1));
    bool started = premade_netns >= 0 && start_network(&oldmask, premade_netns);
    while ((n = read(fp[0], &err, sizeof err)) < 0 && errno == EINTR)
      ;
    if (n == (ssize_t)sizeof err)
      set_status("failed", 127); /* the child already said why */
    else if (opt.net.helper != NULL && !opt.net.own_stack)
      connect_network(runner, premade_netns >= 0 ? started : start_network(&oldmask, -1));
    supervise(runner, opt.timeout_ms != 0 ? start + opt.timeout_ms : 0);
  }
  close(fp[0]);

  /* Nothing of the sandbox may outlive the report.  bwrap's --die-with-parent
   * cannot be relied on when the runner is killed during its setup (before
   * the sandbox's pid 1 set its parent-death signal), so whatever was
   * reparented to us is killed here: SIGKILL to a pid namespace's init from
   * outside takes the whole namespace down. */
  do
    kill_children();
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR);
  /* No writer is left: the files get the last of the output before the exit
   * record says there is no more. */
  for (int k = 0; k < 2; k++)
    output_drain(&entry_out[k]);
  if (opt.handoff) {
    /* The log first: a client that hears the end reads it for why (records.finished_error), and a
     * runner that said why and exited while we forwarded a connection is not yet in it. */
    output_drain(&runner_log);
    close(FD_LISTEN); /* the sandbox is gone: waiting clients hear end of file */
    close(handoff_sock[0]);
  }
  remove_cleanup_paths();
  /* Last before the exit record: while the cgroup exists its stats are live. */
  struct cgroup_totals totals = {0};
  for (size_t i = 0; i < opt.ncgroups; i++)
    cgroup_teardown(opt.cgroups[i], &totals);
  write_exit_file(dirfd, &totals);
  return 0;
}
