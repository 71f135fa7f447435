/* netns.c: connects a sandbox's network namespace to the outside through
 * slirp4netns (user-mode TCP/IP: the sandbox's packets become ordinary
 * sockets of an unprivileged host process), forwards host loopback ports into
 * it and loads its egress filter.
 *
 * The namespace is the supervisor's runner child's (net_make_namespace), made
 * in the sandbox's user namespace before it execs the runner, which makes
 * none: so the helpers start while the runner still sets up the rest.
 * Everything runs as the sandbox identity, never as host root: the helper and
 * nft join the user namespace that owns the network namespace (found with
 * NS_GET_USERNS), where that identity holds CAP_NET_ADMIN.  Sandbox
 * processes have no capabilities, so they cannot change the filter or the
 * interface. */
#define _GNU_SOURCE 1
#include "netns.h"

#include <errno.h>         /* errno */
#include <fcntl.h>         /* open, O_* */
#include <linux/nsfs.h>    /* NS_GET_USERNS */
#include <net/if.h>        /* struct ifreq, IFF_UP */
#include <poll.h>          /* poll */
#include <sched.h>         /* setns, unshare, CLONE_NEW* */
#include <signal.h>        /* SIGCHLD */
#include <stdio.h>         /* snprintf, sscanf */
#include <stdlib.h>        /* malloc, free */
#include <string.h>        /* strstr, strchr, memchr, memcpy */
#include <sys/ioctl.h>     /* ioctl, SIOC[GS]IFFLAGS */
#include <sys/mount.h>     /* mount, MS_* */
#include <sys/prctl.h>     /* prctl, PR_SET_PDEATHSIG */
#include <sys/socket.h>    /* socket, connect, send, shutdown */
#include <sys/stat.h>      /* mknod, chmod, S_IFCHR */
#include <sys/syscall.h>   /* SYS_clone */
#include <sys/sysmacros.h> /* makedev */
#include <sys/un.h>        /* sockaddr_un */
#include <sys/wait.h>      /* waitpid */
#include <unistd.h>        /* fork, syscall, execve, chdir, read, close, pipe2 */

#include "fdutil.h"
#include "hostaddr.h"
#include "util.h"

enum { SETUP_TIMEOUT_MS = 60000 }; /* generous: hundreds of sandboxes starting at once queue on two cores */

/* Reads until `stop` is seen, end of file or the deadline; NUL-terminates. */
static int read_until(int fd, char *buf, size_t size, char stop, int64_t deadline)
{
  size_t len = 0;
  while (len + 1 < size) {
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)left);
    if (r <= 0) {
      if (r < 0 && errno != EINTR)
        return -1;
      continue;
    }
    ssize_t n = read(fd, buf + len, size - 1 - len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (n == 0)
      break;
    len += (size_t)n;
    if (memchr(buf, stop, len) != NULL)
      break;
  }
  buf[len] = '\0';
  return 0;
}

/* Waits for the sandbox's init to report (netsync.c).  End of file means the
 * runner or init failed first (and said why). */
int net_wait_init(int sock)
{
  int64_t deadline = now_ms() + SETUP_TIMEOUT_MS;
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      warnf("the sandbox did not finish its setup");
      return -1;
    }
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno != EINTR) {
      pwarnf("network handshake");
      return -1;
    }
    if (r > 0)
      return fd_expect_byte(sock, 'i');
    /* EINTR, or the deadline, checked above */
  }
}

/* fd 0 may be the creator's confirm pipe: the children get /dev/null. */
void net_child_prepare(const sigset_t *mask, enter_identity_fn enter_identity, pid_t parent)
{
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0 || dup2(null, 0) < 0 || sigprocmask(SIG_SETMASK, mask, NULL) < 0) {
    pwarnf("network helper setup");
    _exit(127);
  }
  if (enter_identity() < 0)
    _exit(127);
  /* After the uid change, which clears it; getppid() closes the race.  In a pid namespace of its
   * own (net_fork_helper) the parent has no pid (0): there the exit pipe, which every helper
   * watches, ends it if the supervisor died first. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != (getpid() == 1 ? 0 : parent))
    _exit(127);
}

/* In a helper's pid and mount namespace, with the capabilities of its user namespace: a /proc of
 * that pid namespace, and with `tun` (a root caller's) a private /dev/net/tun open to the sandbox
 * identity.  0, or -1 after saying why. */
static int helper_mounts(bool tun)
{
  if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0 ||
      mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    goto fail;
  /* slirp4netns opens /dev/net/tun as the sandbox identity, and the host's node is often root's
   * alone (0600): a tmpfs over /dev/net holds a fresh node open to it.  The host's device and its
   * permissions stay as they are; no sandbox process sees this node. */
  if (tun &&
      (mount("tmpfs", "/dev/net", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=4k,mode=0755") < 0 ||
       mknod("/dev/net/tun", S_IFCHR | 0600, makedev(10, 200)) < 0 || chmod("/dev/net/tun", 0666) < 0))
    goto fail;
  return 0;
fail:
  pwarnf("the mounts of a network helper");
  return -1;
}

/* The helpers that parse what sandbox code sends (slirp4netns, the DNS filter) run as the sandbox
 * identity: the host ids the processes of every sandbox of this caller run as, and own their user
 * namespaces (an unprivileged caller's: the caller's own uid).  A memory bug in one, driven from
 * one sandbox, must not reach another's processes, or the caller's (their environment, their
 * memory, a signal).  So they run in a pid namespace of their own, with a /proc of that namespace,
 * where no other process has a pid to open, trace or signal (tests/security/test_63), and
 * slirp4netns's seccomp filter (--enable-seccomp) refuses ptrace, process_vm_* and pidfd_getfd
 * besides.  A root caller's are cloned into one; an unprivileged caller's slirp4netns goes into
 * one from the sandbox's user namespace (enter_userns_pidns); its DNS filter stays where it is:
 * its forks of nft must not count against that namespace's process limit (dnsfilter.c). */
pid_t net_fork_helper(bool tun)
{
  if (geteuid() != 0)
    return fork();
  /* fork()'s semantics (a copy of this stack).  glibc's fork would also store the child's thread id
   * in its thread block; the helpers are single-threaded, and glibc asks the kernel for its own id
   * where it signals itself. */
  pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD | CLONE_NEWPID | CLONE_NEWNS, NULL, NULL, NULL, 0);
  if (pid == 0 && helper_mounts(tun) < 0)
    _exit(127);
  return pid;
}

/* An unprivileged caller can make a pid namespace only in a user namespace it owns: the helper's
 * child joins the sandbox's, where it is root, forks the helper into a pid and a mount namespace
 * owned there, and exits.  The helper is then the supervisor's (its subreaper), killed and reaped
 * with its other children; a parent-death signal set before that would fire at this exit, so the
 * exit pipe alone ends it if the supervisor dies.  There it needs no --userns-path.  Returns in
 * the helper. */
static void enter_userns_pidns(int userns)
{
  if (setns(userns, CLONE_NEWUSER) < 0 || unshare(CLONE_NEWPID | CLONE_NEWNS) < 0) {
    pwarnf("a pid namespace for %s", "slirp4netns");
    _exit(127);
  }
  pid_t pid = fork();
  if (pid < 0) {
    pwarnf("fork");
    _exit(127);
  }
  if (pid > 0)
    _exit(0);
}

static pid_t spawn_helper(const struct net_options *opt, const int fds[4], const sigset_t *mask,
                          enter_identity_fn enter_identity)
{
  enum { EXIT_R, READY_W, USERNS, NETNS };
  char exit_arg[32], ready_arg[32], userns_arg[48], netns_arg[48];
  snprintf(exit_arg, sizeof exit_arg, "--exit-fd=%d", fds[EXIT_R]);
  snprintf(ready_arg, sizeof ready_arg, "--ready-fd=%d", fds[READY_W]);
  snprintf(userns_arg, sizeof userns_arg, "--userns-path=/proc/self/fd/%d", fds[USERNS]);
  snprintf(netns_arg, sizeof netns_arg, "/proc/self/fd/%d", fds[NETNS]);
  char *argv[16];
  size_t n = 0;
  argv[n++] = (char *)opt->helper;
  argv[n++] = "--configure";
  argv[n++] = "--mtu=65520";
  argv[n++] = "--disable-host-loopback";
  argv[n++] = "--enable-seccomp";
  argv[n++] = exit_arg;
  argv[n++] = ready_arg;
  bool root = geteuid() == 0;
  if (root) /* else it runs in that user namespace (enter_userns_pidns) */
    argv[n++] = userns_arg;
  argv[n++] = "--netns-type=path";
  if (opt->nforwards > 0)
    argv[n++] = "--api-socket=api.sock"; /* relative: the identity may not traverse the path */
  argv[n++] = netns_arg;
  argv[n++] = "tap0";
  argv[n] = NULL;

  pid_t parent = getpid();
  pid_t pid = net_fork_helper(true);
  if (pid != 0) {
    if (pid < 0)
      pwarnf("fork");
    return pid;
  }
  if (chdir(opt->dir) < 0) { /* before dropping root, which may not reach it */
    pwarnf("chdir %s", opt->dir);
    _exit(127);
  }
  net_child_prepare(mask, enter_identity, parent);
  if (!root) {
    enter_userns_pidns(fds[USERNS]);
    if (helper_mounts(false) < 0) /* the host's tun node: doctor checks it */
      _exit(127);
  }
  for (int i = 0; i < 4; i++)
    if ((root || i != USERNS) && fd_set_cloexec(fds[i], false) < 0)
      _exit(127);
  execve(opt->helper, argv, host_env);
  pwarnf("exec %s", opt->helper);
  _exit(127);
}

/* slirp4netns writes '1' to its ready fd once tap0 is configured; end of
 * file means it failed (and said why on our stderr). */
static int wait_ready(int ready_r)
{
  char buf[8];
  if (read_until(ready_r, buf, sizeof buf, '1', now_ms() + SETUP_TIMEOUT_MS) < 0 || strchr(buf, '1') == NULL) {
    warnf("%s did not come up", "slirp4netns");
    return -1;
  }
  return 0;
}

static int add_forward(const char *dir, const struct net_forward *f)
{
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (snprintf(addr.sun_path, sizeof addr.sun_path, "%s/api.sock", dir) >= (int)sizeof addr.sun_path) {
    warnf("%s/api.sock: path too long for a socket", dir);
    return -1;
  }
  char req[256], reply[512];
  int len = snprintf(req, sizeof req,
                     "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", "
                     "\"host_addr\": \"127.0.0.1\", \"host_port\": %u, \"guest_port\": %u}}",
                     f->host_port, f->guest_port);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rc = -1;
  if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0 ||
      send(s, req, (size_t)len, MSG_NOSIGNAL) != len || shutdown(s, SHUT_WR) < 0 ||
      read_until(s, reply, sizeof reply, '\0', now_ms() + SETUP_TIMEOUT_MS) < 0)
    pwarnf("slirp4netns api %s", addr.sun_path);
  else if (strstr(reply, "\"return\"") == NULL)
    warnf("forwarding 127.0.0.1:%u to port %u failed: %s", f->host_port, f->guest_port, reply);
  else
    rc = 0;
  if (s >= 0)
    close(s);
  return rc;
}

/* nft, in the sandbox's user and network namespaces.  Sandbox root is the
 * identity's uid there, so nft keeps the namespace's capabilities over exec.
 * It runs while the helper comes up; filter_loaded() waits for it. */
static pid_t start_filter(const struct net_options *opt, const char *rules, int userns, int netns, const sigset_t *mask,
                          enter_identity_fn enter_identity)
{
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    pwarnf("fork");
  if (pid == 0) {
    net_child_prepare(mask, enter_identity, parent);
    if (setns(userns, CLONE_NEWUSER) < 0 || setns(netns, CLONE_NEWNET) < 0) {
      pwarnf("setns into the sandbox's network namespace");
      _exit(127);
    }
    char *argv[] = {(char *)opt->nft, "--", (char *)rules, NULL};
    execve(opt->nft, argv, host_env);
    pwarnf("exec %s", opt->nft);
    _exit(127);
  }
  return pid;
}

static int filter_loaded(pid_t pid)
{
  int st;
  if (pid < 0)
    return -1;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    warnf("loading the sandbox's egress filter failed");
    return -1;
  }
  return 0;
}

/* The ruleset and, after it, the host's current addresses for its sets (hostaddr.h), in a buffer the
 * caller frees; `hosts` watches their changes from before they are read.  NULL after saying why. */
static char *rules_with_host(const struct net_options *opt, struct host_watch *hosts)
{
  size_t rules = strlen(opt->rules), size = rules + 1 + host_elements_size(opt->host_max);
  char *text = malloc(size);
  int n = -1;
  if (text != NULL && host_watch_open(hosts) == 0) {
    memcpy(text, opt->rules, rules);
    text[rules] = '\n';
    n = host_elements(hosts->query, host_table(opt->own_stack), opt->host_max, text + rules + 1, size - rules - 1);
  }
  if (n < 0) {
    host_watch_close(hosts);
    free(text);
    return NULL;
  }
  text[rules + 1 + (size_t)n] = '\0';
  hosts->loaded = text + rules + 1;
  return text;
}

int net_connect(const struct net_options *opt, int netns, const sigset_t *mask, enter_identity_fn enter_sandbox,
                enter_identity_fn enter_identity, int *exit_w)
{
  struct host_watch hosts = {-1, -1, -1, NULL};
  char *rules = opt->host_max > 0 ? rules_with_host(opt, &hosts) : NULL;
  int userns = ioctl(netns, NS_GET_USERNS); /* close-on-exec, per the kernel */
  int ex[2] = {-1, -1}, ready[2] = {-1, -1}, armed[2] = {-1, -1};
  if ((opt->host_max > 0 && (rules == NULL || pipe2(armed, O_CLOEXEC) < 0)) || userns < 0 || pipe2(ex, O_CLOEXEC) < 0 ||
      pipe2(ready, O_CLOEXEC) < 0) {
    pwarnf("network setup");
    return -1; /* the supervisor fails the sandbox and exits: nothing else to release */
  }
  const char *ruleset = rules != NULL ? rules : opt->rules;
  hosts.armed = armed[0];
  /* Every helper starts before any is waited for, the egress filter's load first: it is the longest
   * (an exec of nft, its cache, the transaction), and it loads while the others come up.  One on tap0
   * (own_stack) needs the link: it waits for the helper. */
  pid_t filter = !opt->own_stack ? start_filter(opt, ruleset, userns, netns, mask, enter_sandbox) : -1;
  int rc = spawn_helper(opt, (int[4]){ex[0], ready[1], userns, netns}, mask, enter_sandbox) < 0 ? -1 : 0;
  /* Outside the sandbox's cgroups: sandbox code holding its pids or memory must not stop the filter's
   * updates of the host's addresses or a policy change (red team); its memory is fixed at start, its
   * work rate-limited. */
  int dns_ready = -1;
  if (rc == 0 &&
      dns_filter_start(opt, userns, netns, ex[0], rules != NULL ? &hosts : NULL, mask, enter_identity, &dns_ready) < 0)
    rc = -1;
  close(ready[1]);
  *exit_w = ex[1]; /* slirp4netns exits once this closes: with us, at the latest */
  /* The DNS filter listens on the sandbox's port 53 before init is released (sandbox code could take it). */
  if (rc == 0)
    rc = dns_filter_ready(dns_ready);
  if (rc == 0)
    rc = wait_ready(ready[0]);
  if (rc == 0 && opt->own_stack)
    filter = start_filter(opt, ruleset, userns, netns, mask, enter_sandbox);
  for (size_t i = 0; rc == 0 && i < opt->nforwards; i++)
    rc = add_forward(opt->dir, &opt->forwards[i]);
  if (filter_loaded(filter) < 0) /* reaps it in any case */
    rc = -1;
  if (rc == 0 && armed[1] >= 0 && write(armed[1], "1", 1) != 1) /* the DNS filter may update the host's sets */
    rc = -1;
  close(ex[0]);
  close(ready[0]);
  close(userns);
  host_watch_close(&hosts);
  if (armed[1] >= 0) {
    close(armed[0]);
    close(armed[1]);
  }
  free(rules);
  return rc;
}

/* The ids 0..N-1 a user namespace's map (/proc/self/[ug]id_map's text) covers
 * without a gap: N, 0 if it does not map 0.  The kernel lists extents in the
 * order they were written, which for ours is by inside id. */
static unsigned long mapped_from_zero(const char *map)
{
  unsigned long inside, outside, count, covered = 0;
  int used;
  while (sscanf(map, "%lu %lu %lu%n", &inside, &outside, &count, &used) == 3) {
    if (inside == covered)
      covered += count;
    map += used;
  }
  return covered;
}

/* Sends the network namespace we are in on `sock` (-1: nobody asked).  0, or -1 after saying why. */
static int send_namespace(int sock)
{
  if (sock < 0)
    return 0;
  int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (ns < 0 || fd_send(sock, ns) < 0) {
    pwarnf("handing the sandbox's network namespace to the supervisor");
    if (ns >= 0)
      close(ns);
    return -1;
  }
  close(ns);
  return 0;
}

/* Sandbox root has no CAP_NET_RAW (layout.py: a packet socket would pass beside
 * the egress filter), so ping needs ICMP datagram sockets, which the filter sees:
 * the namespace admits the groups its user namespace maps from 0 (the identity's
 * 65536; one under a single-id mapping).  Failing leaves ping refused, no more. */
static void allow_ping(void)
{
  char map[4096], range[32];
  int fd = open("/proc/self/gid_map", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, map, sizeof map - 1) : -1;
  if (fd >= 0)
    close(fd);
  map[n > 0 ? n : 0] = '\0';
  unsigned long groups = mapped_from_zero(map);
  if (groups == 0)
    return;
  snprintf(range, sizeof range, "0 %lu", groups - 1);
  if (write_file("/proc/sys/net/ipv4/ping_group_range", range) < 0)
    pwarnf("admitting the sandbox's groups to ICMP datagram sockets (ping)");
}

int net_make_namespace(int premade, int sock)
{
  if (premade >= 0) {
    if (setns(premade, CLONE_NEWNET) < 0) {
      pwarnf("joining the sandbox's network namespace");
      return -1;
    }
    return send_namespace(sock);
  }
  if (unshare(CLONE_NEWNET) < 0) {
    pwarnf("unshare the sandbox's network namespace");
    return -1;
  }
  /* Loopback up, as a runner that made the namespace would bring it (the kernel adds
   * 127.0.0.1 and ::1 as it comes up). */
  struct ifreq lo = {.ifr_name = "lo"};
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  bool up = s >= 0 && ioctl(s, SIOCGIFFLAGS, &lo) == 0 && (lo.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &lo) == 0);
  if (s >= 0)
    close(s);
  if (!up) {
    pwarnf("bringing up the sandbox's loopback");
    return -1;
  }
  allow_ping();
  return send_namespace(sock);
}

/* Holds the runner child until the supervisor has connected the namespace: 'g', or end of file when
 * it could not (and said why). */
static int wait_connected(int sock)
{
  if (fd_expect_byte(sock, 'g') < 0) {
    warnf("the sandbox's network was not connected");
    return -1;
  }
  return 0;
}

/* runsc refuses to serve the host's network namespace, which it recognises by a sysctl only that one
 * shows: /proc/sys/net/core/rmem_default, in the runsc of Debian 12 (20221219), which every namespace has
 * since Linux 6.x.  The namespace joined is the sandbox's, never the host's (made above), so in a mount
 * namespace of the runner's own that directory is hidden from it; the sandbox's /proc is gVisor's.
 * What covers it is /proc itself, bound without its submounts: a proc mount with nothing over it, which
 * the kernel requires to exist before runsc's gofer, in a user namespace of its own, may mount a proc
 * (mount_too_revealing; a tmpfs there left no such mount, and Linux 6.18 refused the gofer's).  Where
 * /proc has a submount (systemd's binfmt_misc) and this namespace is a user namespace's (a rootless
 * caller), the copied mounts are locked to their children and only a recursive bind takes /proc (EINVAL
 * otherwise); a submount on an empty directory, as binfmt_misc is, still counts as nothing over it. */
static int hide_root_netns_probe(void)
{
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0 ||
      (mount("/proc", "/proc/sys/net/core", NULL, MS_BIND, NULL) < 0 &&
       (errno != EINVAL || mount("/proc", "/proc/sys/net/core", NULL, MS_BIND | MS_REC, NULL) < 0))) {
    pwarnf("hiding /proc/sys/net/core from the runner");
    return -1;
  }
  return 0;
}

int net_own_stack_ready(int sock)
{
  return hide_root_netns_probe() < 0 ? -1 : wait_connected(sock);
}

int net_namespace_in(int userns)
{
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
    pwarnf("network namespace socket");
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) { /* joins the user namespace for good: a child's to lose */
    close(pair[0]);
    _exit(setns(userns, CLONE_NEWUSER) < 0 || net_make_namespace(-1, pair[1]) < 0 ? 127 : 0);
  }
  close(pair[1]);
  int ns = pid < 0 ? -1 : fd_receive(pair[0]);
  close(pair[0]);
  int st = 1;
  while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (ns >= 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
    close(ns);
    ns = -1;
  }
  if (ns < 0)
    warnf("making the sandbox's network namespace failed");
  return ns;
}

int net_make_namespace_for_root(int userns, int sock)
{
  int ns = net_namespace_in(userns);
  if (ns < 0)
    return -1;
  int rc = -1;
  if (setns(ns, CLONE_NEWNET) < 0)
    pwarnf("joining the sandbox's network namespace");
  else if (fd_send(sock, ns) < 0)
    pwarnf("handing the sandbox's network namespace to the supervisor");
  else
    rc = net_own_stack_ready(sock);
  close(ns);
  return rc;
}
