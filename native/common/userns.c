/* userns.c: the sandbox's two user namespaces (userns.h). */
#define _GNU_SOURCE 1
#include "userns.h"

#include <errno.h>       /* errno */
#include <fcntl.h>       /* open, O_* */
#include <grp.h>         /* setgroups */
#include <sched.h>       /* unshare, CLONE_NEWUSER */
#include <stdio.h>       /* snprintf */
#include <stdlib.h>      /* strtoul */
#include <stdnoreturn.h> /* noreturn */
#include <string.h>      /* strcmp, memcpy */
#include <sys/prctl.h>   /* prctl, PR_SET_PDEATHSIG */
#include <sys/socket.h>  /* socketpair, sendmsg, recvmsg */
#include <sys/syscall.h> /* SYS_clone */
#include <sys/wait.h>    /* waitpid */
#include <unistd.h>      /* fork, pipe2, read, write, close, execve, setres[ug]id */

#include "fdutil.h"
#include "util.h"

/* What one sandbox may take of what the kernel grants its host uid, which all
 * sandboxes of a caller share (a share of the limit the outer namespace's
 * creator sees, set in that namespace, which counts before its parents). */
static const char *const shared_limits[] = {"max_inotify_instances", "max_inotify_watches", "max_fanotify_groups",
                                            "max_fanotify_marks"};
enum { SHARE = 4 };

static bool add_range(struct id_range *ranges, size_t *n, const char *arg)
{
  unsigned long v[3];
  const char *p = arg;
  for (int i = 0; i < 3; i++) {
    char *end;
    errno = 0;
    v[i] = strtoul(p, &end, 10);
    if (errno != 0 || end == p || *end != (i < 2 ? ':' : '\0'))
      return false;
    p = end + 1;
  }
  if (*n >= USERNS_MAX_RANGES || v[2] == 0 || v[0] > UINT32_MAX || v[1] > UINT32_MAX || v[2] > UINT32_MAX)
    return false;
  ranges[(*n)++] = (struct id_range){v[0], v[1], v[2]};
  return true;
}

int userns_option(struct userns_plan *p, const char *flag, const char *value)
{
  if (strcmp(flag, "--userns-uid") == 0 || strcmp(flag, "--userns-gid") == 0) {
    bool uid = flag[9] == 'u';
    if (!add_range(uid ? p->uids : p->gids, uid ? &p->nuids : &p->ngids, value))
      usage_die("bad %s (INSIDE:OUTSIDE:COUNT, at most %d): %s", flag, USERNS_MAX_RANGES, value);
    return 1;
  }
  if (strcmp(flag, "--userns-nested") == 0) {
    char *end;
    errno = 0;
    p->nested = strtoul(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || value[0] == '-' || p->nested > USERNS_MAX_NESTED)
      usage_die("bad %s (0 to %d): %s", flag, USERNS_MAX_NESTED, value);
    return 1;
  }
  if (strcmp(flag, "--newuidmap") != 0 && strcmp(flag, "--newgidmap") != 0)
    return 0;
  if (value[0] != '/')
    usage_die("%s needs an absolute path: %s", flag, value);
  *(flag[5] == 'u' ? &p->newuidmap : &p->newgidmap) = value;
  return 1;
}

void userns_check_plan(const struct userns_plan *p)
{
  if ((p->nuids > 0) != (p->ngids > 0) || (p->newuidmap != NULL) != (p->newgidmap != NULL) ||
      (p->newuidmap != NULL && p->nuids == 0) || (p->nested > 0 && p->nuids == 0))
    usage_die("--userns-uid and --userns-gid go together (and --newuidmap/--newgidmap and --userns-nested with them)");
}

/* "INSIDE OUTSIDE COUNT\n" per range. */
static int write_map(pid_t pid, const char *which, const struct id_range *r, size_t n)
{
  char path[64], text[256];
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(text + len, sizeof text - len, "%lu %lu %lu\n", r[i].inside, r[i].outside, r[i].count);
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, which);
  if (write_file(path, text) < 0) {
    pwarnf("writing %s", path);
    return -1;
  }
  return 0;
}

/* Starts newuidmap PID INSIDE OUTSIDE COUNT... (setuid root: checks /etc/subuid).
 * Its pid, or -1. */
static pid_t start_newidmap(const char *helper, pid_t pid, const struct id_range *r, size_t n)
{
  char args[1 + 1 + 3 * USERNS_MAX_RANGES][24];
  char *argv[2 + 3 * USERNS_MAX_RANGES + 1];
  size_t k = 0;
  argv[k++] = (char *)helper;
  snprintf(args[0], sizeof args[0], "%d", (int)pid);
  argv[k++] = args[0];
  for (size_t i = 0; i < n; i++) {
    unsigned long f[3] = {r[i].inside, r[i].outside, r[i].count};
    for (int j = 0; j < 3; j++) {
      snprintf(args[1 + 3 * i + (size_t)j], sizeof args[0], "%lu", f[j]);
      argv[k++] = args[1 + 3 * i + (size_t)j];
    }
  }
  argv[k] = NULL;
  pid_t child = fork();
  if (child == 0) {
    execve(helper, argv, host_env);
    pwarnf("exec %s", helper);
    _exit(127);
  }
  if (child < 0)
    pwarnf("fork %s", helper);
  return child;
}

static int finish_newidmap(const char *helper, pid_t child)
{
  int st;
  while (child > 0 && waitpid(child, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  if (child < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    warnf("%s failed (is there a range for this user in /etc/subuid and /etc/subgid?)", helper);
    return -1;
  }
  return 0;
}

static int send_byte(int fd, char c)
{
  return write(fd, &c, 1) == 1 ? 0 : -1;
}

enum { NLIMITS = sizeof shared_limits / sizeof *shared_limits };

/* What the kernel grants the identity now, read before unsharing: inside the
 * new namespace these files show its own limits, unlimited. */
static void read_limits(unsigned long limits[NLIMITS])
{
  char path[96], value[32];
  for (size_t i = 0; i < NLIMITS; i++) {
    limits[i] = 0;
    snprintf(path, sizeof path, "/proc/sys/user/%s", shared_limits[i]);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue; /* an older kernel without this limit */
    ssize_t n = read(fd, value, sizeof value - 1);
    close(fd);
    if (n > 0) {
      value[n] = '\0';
      limits[i] = strtoul(value, NULL, 10);
    }
  }
}

/* In the outer namespace, as its root: a share of each per-uid limit, and room
 * for exactly one more user namespace (the inner one), or the runner's too. */
static int set_limits(const unsigned long limits[NLIMITS], unsigned long nested)
{
  char path[96], value[32];
  for (size_t i = 0; i < NLIMITS; i++) {
    if (limits[i] == 0)
      continue;
    snprintf(path, sizeof path, "/proc/sys/user/%s", shared_limits[i]);
    snprintf(value, sizeof value, "%lu", limits[i] / SHARE > 0 ? limits[i] / SHARE : 1);
    if (write_file(path, value) < 0) {
      pwarnf("%s", path);
      return -1;
    }
  }
  snprintf(value, sizeof value, "%lu", 1 + nested);
  if (write_file("/proc/sys/user/max_user_namespaces", value) < 0) {
    pwarnf("/proc/sys/user/max_user_namespaces");
    return -1;
  }
  return 0;
}

/* The inner namespace's holder (a grandchild), born in it by clone(CLONE_NEWUSER)
 * so that its maker need not wait for it to unshare: it only has to exist while
 * the outer namespace's root maps it and opens its namespace, and ends when
 * *hold_w closes.  Its pid, or -1. */
static pid_t spawn_inner(int *hold_w)
{
  int hold[2];
  if (pipe2(hold, O_CLOEXEC) < 0)
    return -1;
  /* The raw system call: fork-like with no stack given, in every architecture's argument order. */
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) {
    char c;
    close(hold[1]);
    while (read(hold[0], &c, 1) < 0 && errno == EINTR)
      ;
    _exit(0);
  }
  close(hold[0]);
  if (pid < 0)
    close(hold[1]);
  else
    *hold_w = hold[1];
  return pid;
}

/* The identity map of the outer namespace's ids, one range per range of the
 * outer map: the kernel maps each range of a map through a single range of the
 * parent's, so "0 0 65536" over an outer map of "0 UID 1" and "1 SUB 65535"
 * would be refused. */
static void identity_ranges(const struct id_range *outer, size_t n, struct id_range *inner)
{
  for (size_t i = 0; i < n; i++)
    inner[i] = (struct id_range){outer[i].inside, outer[i].inside, outer[i].count};
}

/* Maps the inner namespace one to one onto the outer one (we are its root). */
static int map_inner(pid_t inner, const struct userns_plan *p)
{
  struct id_range uids[USERNS_MAX_RANGES], gids[USERNS_MAX_RANGES];
  identity_ranges(p->uids, p->nuids, uids);
  identity_ranges(p->gids, p->ngids, gids);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/setgroups", (int)inner);
  int own = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
  char state[8] = "";
  if (own >= 0) {
    ssize_t n = read(own, state, sizeof state - 1);
    state[n > 0 ? n : 0] = '\0';
    close(own);
  }
  if (strncmp(state, "deny", 4) == 0 && write_file(path, "deny") < 0) {
    pwarnf("%s", path);
    return -1;
  }
  return write_map(inner, "uid_map", uids, p->nuids) == 0 && write_map(inner, "gid_map", gids, p->ngids) == 0 ? 0 : -1;
}

/* The outer namespace's maker (a child), as the sandbox identity. */
static noreturn void outer_main(const struct userns_plan *p, userns_identity_fn enter_identity, int ready_w, int go_r,
                                int sock, bool detach)
{
  /* Dumpable again after the uid change: the inner child inherits it, and a
   * non-dumpable process's /proc files belong to host root, so we could not
   * write its maps.  Nothing of the sandbox can see us (other pid namespaces). */
  if (enter_identity() < 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
    _exit(127);
  unsigned long limits[NLIMITS];
  read_limits(limits);
  if (unshare(CLONE_NEWUSER) < 0) {
    pwarnf("unshare a user namespace");
    _exit(127);
  }
  if (send_byte(ready_w, 'u') < 0 || fd_expect_byte(go_r, 'm') < 0)
    _exit(127); /* the parent could not map us, and said why */
  if (set_limits(limits, p->nested) < 0)
    _exit(127);
  int hold_w;
  pid_t inner = spawn_inner(&hold_w);
  if (inner < 0) {
    pwarnf("clone the sandbox's user namespace");
    _exit(127);
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/user", (int)inner);
  int ns = -1;
  bool sent = map_inner(inner, p) == 0 && (ns = open(path, O_RDONLY | O_CLOEXEC)) >= 0 && fd_send(sock, ns) == 0;
  /* The fd sent is the namespace's hold on it: the holder ends with us. Detached, it is an
   * orphan the supervisor (a subreaper) collects, and nobody waits for it (a hand-off between
   * processes on every create); else our caller's nearest reaper may collect only its own
   * children (a subreaper, a container's pid 1), so we wait for it. */
  if (!detach) {
    close(hold_w);
    while (waitpid(inner, NULL, 0) < 0 && errno == EINTR)
      ;
  }
  _exit(sent ? 0 : 127);
}

static int map_outer(const struct userns_plan *p, pid_t outer)
{
  if (p->newuidmap != NULL) { /* both at once: each is a setuid program's start, waited for */
    pid_t uids = start_newidmap(p->newuidmap, outer, p->uids, p->nuids);
    pid_t gids = start_newidmap(p->newgidmap, outer, p->gids, p->ngids);
    int uid_rc = finish_newidmap(p->newuidmap, uids);
    return finish_newidmap(p->newgidmap, gids) == 0 && uid_rc == 0 ? 0 : -1;
  }
  if (geteuid() != 0) { /* mapping only ourselves: setgroups must be denied first */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)outer);
    if (write_file(path, "deny") < 0) {
      pwarnf("%s", path);
      return -1;
    }
  }
  return write_map(outer, "uid_map", p->uids, p->nuids) == 0 && write_map(outer, "gid_map", p->gids, p->ngids) == 0
      ? 0
      : -1;
}

int identity_drop(uid_t uid, gid_t gid)
{
  if (setgroups(0, NULL) < 0) {
    pwarnf("setgroups");
    return -1;
  }
  if (setresgid(gid, gid, gid) < 0) {
    pwarnf("setresgid");
    return -1;
  }
  if (setresuid(uid, uid, uid) < 0) {
    pwarnf("setresuid");
    return -1;
  }
  uid_t r, e, s;
  gid_t rg, eg, sg;
  if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0 || r != uid || e != uid || s != uid || rg != gid ||
      eg != gid || sg != gid || getgroups(0, NULL) != 0) {
    errno = EPERM;
    pwarnf("dropping privileges did not stick");
    return -1;
  }
  return 0;
}

static int own_identity(void)
{
  return 0;
}

int userns_enter(const struct userns_plan *p)
{
  sigset_t mask;
  sigprocmask(SIG_SETMASK, NULL, &mask);
  struct userns_maker m;
  int ns = userns_start(&m, p, own_identity, &mask, false) < 0 ? -1 : userns_finish(&m, p);
  if (ns < 0)
    return -1;
  int r = setns(ns, CLONE_NEWUSER);
  if (r < 0)
    pwarnf("joining the sandbox ids' user namespace");
  close(ns);
  return r;
}

int userns_start(struct userns_maker *m, const struct userns_plan *p, userns_identity_fn enter_identity,
                 const sigset_t *mask, bool detach)
{
  int ready[2], go[2], sock[2];
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 ||
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) < 0) {
    pwarnf("user namespace setup");
    return -1;
  }
  /* Detached, the maker is our parent's child, which reaps it (the raw system call, as in spawn_inner). */
  pid_t outer = detach ? (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0) : fork();
  if (outer < 0) {
    pwarnf("fork");
    return -1;
  }
  if (outer == 0) {
    sigprocmask(SIG_SETMASK, mask, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    close(ready[0]); /* only the ends it uses, so each side sees the other give up */
    close(go[1]);
    close(sock[0]);
    outer_main(p, enter_identity, ready[1], go[0], sock[1], detach);
  }
  close(ready[1]);
  close(go[0]);
  close(sock[1]);
  *m = (struct userns_maker){outer, ready[0], go[1], sock[0], detach};
  return 0;
}

int userns_finish(struct userns_maker *m, const struct userns_plan *p)
{
  int ns = -1;
  if (fd_expect_byte(m->ready_r, 'u') == 0 && map_outer(p, m->pid) == 0 && send_byte(m->go_w, 'm') == 0)
    ns = fd_receive(m->sock_r); /* sent last: its arrival is the maker's success, its end of file (a
                                   * seqpacket pair) the maker's failure once it and its holder exited */
  close(m->ready_r);
  close(m->go_w);
  close(m->sock_r);
  int st = 0;
  pid_t reaped = 0;
  while (!m->detach && (reaped = waitpid(m->pid, &st, 0)) < 0 && errno == EINTR)
    ;
  if (ns >= 0 && !m->detach && (reaped < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
    close(ns);
    ns = -1;
  }
  if (ns < 0)
    warnf("the sandbox's user namespace could not be made");
  return ns;
}
