/* spawn.c: starting processes from pid 1.
 *
 * An exec's child is forked and says itself why it failed to start: sandbox
 * code runs as the same uid and can SIGSTOP it before its exec, and init must
 * never wait on what sandbox code can stop; it learns of the exec from a
 * close-on-exec pipe among the others it polls.  The entrypoint is forked too,
 * for its RLIMIT_NOFILE (children_nofile).  posix_spawn (glibc's
 * CLONE_VM|CLONE_VFORK, no page tables copied) keeps its caller waiting until
 * the child's exec, and sets no rlimit: it starts the entrypoint and the pipe
 * execs under gVisor only (docs/RUNNERS.md). */
#define _GNU_SOURCE 1
#include "spawn.h"

#include <errno.h>        /* ENOENT, ENOTDIR, EACCES, ... */
#include <fcntl.h>        /* AT_FDCWD, AT_EACCESS */
#include <limits.h>       /* PATH_MAX, INT_MAX */
#include <signal.h>       /* sigset_t, sigemptyset */
#include <spawn.h>        /* posix_spawn* */
#include <stdio.h>        /* snprintf */
#include <string.h>       /* strchr, strchrnul, strlen, memcpy, memset */
#include <sys/ioctl.h>    /* ioctl, TIOCSCTTY */
#include <sys/resource.h> /* getrlimit, setrlimit, RLIMIT_NOFILE */
#include <sys/wait.h>     /* waitpid */
#include <unistd.h>       /* faccessat, X_OK, fork, setsid, dup2, close_range */

#include "fdutil.h"
#include "init_handoff.h"
#include "util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static posix_spawnattr_t attr;

/* Sandbox code's RLIMIT_NOFILE, hard limit included, is init's less this margin.  The kernel
 * refuses a process's SCM_RIGHTS once its uid has more descriptors in flight than that process's
 * soft RLIMIT_NOFILE, and every sandbox of a caller runs as one uid: sandbox code holding
 * descriptors in flight (253 a message past its own limit at most) must leave init, and the
 * supervisor's helpers, which run at the same hard limit, room to pass theirs (red13b). */
#define NOFILE_MARGIN 512
static struct rlimit children_nofile;

static void children_nofile_init(void)
{
  if (getrlimit(RLIMIT_NOFILE, &children_nofile) < 0)
    pdie("getrlimit");
  rlim_t max = children_nofile.rlim_max;
  if (max != RLIM_INFINITY)
    max = max > 2 * NOFILE_MARGIN ? max - NOFILE_MARGIN : max / 2;
  children_nofile.rlim_max = max;
  if (children_nofile.rlim_cur > max)
    children_nofile.rlim_cur = max;
}

void spawn_init(void)
{
  children_nofile_init();
  sigset_t none, all;
  sigemptyset(&none);
  /* Every signal back to SIG_DFL: ignored dispositions survive exec, and the
   * host side (Python ignores SIGPIPE) would otherwise leak into the sandbox,
   * e.g. `yes | head` would not end with SIGPIPE.  memset, not sigfillset:
   * sigfillset leaves out glibc's internal signals 32 and 33, which the spawn
   * child then sets to SIG_IGN and exec passes on. */
  memset(&all, 0xff, sizeof all);
  int err = posix_spawnattr_init(&attr);
  if (err == 0)
    err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
  if (err == 0)
    err = posix_spawnattr_setsigmask(&attr, &none);
  if (err == 0)
    err = posix_spawnattr_setsigdefault(&attr, &all);
  if (err != 0) {
    errno = err;
    pdie("posix_spawnattr");
  }
}

/* Calls try on each file PATH names for a->argv[0], as execvp searches, but
 * over the child's PATH (execvp and posix_spawnp would use init's): until one
 * starts (0) or fails for a reason other than not being there or not being
 * executable, whose errno is returned; else EACCES if one was found but not
 * executable, ENOENT if none was. */
typedef int try_fn(const char *file, const struct spawn_args *a, pid_t *pid);
static int search_path(const struct spawn_args *a, try_fn *try, pid_t *pid)
{
  const char *name = a->argv[0];
  if (*name == '\0')
    return ENOENT;
  size_t namelen = strlen(name);
  bool eacces = false;
  for (const char *p = a->path != NULL ? a->path : DEFAULT_PATH;; p++) {
    const char *colon = strchrnul(p, ':');
    size_t dirlen = (size_t)(colon - p);
    char file[PATH_MAX];
    /* An empty element means the current directory, as in execvp. */
    if (dirlen + 1 + namelen < sizeof file) {
      size_t off = 0;
      if (dirlen > 0) {
        memcpy(file, p, dirlen);
        file[dirlen] = '/';
        off = dirlen + 1;
      }
      memcpy(file + off, name, namelen + 1);
      int err = try(file, a, pid);
      if (err != ENOENT && err != ENOTDIR && err != EACCES)
        return err;
      eacces |= err == EACCES;
    }
    if (*colon == '\0')
      break;
    p = colon;
  }
  return eacces ? EACCES : ENOENT;
}

/* In the child of fork_child, which already runs in its cwd. */
static int exec_file(const char *file, const struct spawn_args *a, pid_t *pid)
{
  (void)pid;
  execve(file, a->argv, a->envp);
  return errno;
}

/* A file of PATH, in that child: skipped by the rule spawn_candidate's search
 * follows (a file faccessat refuses, for whatever reason, is not there), so that
 * a PATH entry too long or a symlink loop ends neither search. */
static int exec_candidate(const char *file, const struct spawn_args *a, pid_t *pid)
{
  if (faccessat(AT_FDCWD, file, X_OK, AT_EACCESS) < 0)
    return errno == EACCES ? EACCES : ENOENT;
  return exec_file(file, a, pid);
}

/* fork_child's child: returns only with the errno of what failed. */
static int child_start(const struct spawn_args *a)
{
  sigset_t none;
  sigemptyset(&none);
  for (int sig = 1; sig < NSIG; sig++)
    signal(sig, SIG_DFL); /* fails harmlessly for SIGKILL, SIGSTOP and glibc's own */
  if (sigprocmask(SIG_SETMASK, &none, NULL) < 0 || setsid() < 0 || setrlimit(RLIMIT_NOFILE, &children_nofile) < 0)
    return errno;
  for (int i = 0; i < 3; i++)
    if (dup2(a->fds[i], i) < 0)
      return errno;
  if ((a->pty && ioctl(0, TIOCSCTTY, 0) < 0) || (a->keys_fd >= 0 && handoff_start_witness(a->keys_fd) < 0) ||
      (a->cwd_fd >= 0 && fchdir(a->cwd_fd) < 0) || close_range(3, INT_MAX, CLOSE_RANGE_CLOEXEC) < 0)
    return errno;
  return strchr(a->argv[0], '/') != NULL ? exec_file(a->argv[0], a, NULL) : search_path(a, exec_candidate, NULL);
}

/* An exec's child (`started`), or one on a terminal, which it must make its
 * controlling one (TIOCSCTTY: posix_spawn cannot).  The one child tries each
 * file of PATH in turn: a second child would need the terminal in a second
 * session, which gVisor refuses (a terminal keeps its first session there for
 * good).  The close-on-exec pipe ends at its exec; without `started` (under
 * gVisor, and the entrypoint) a failure's errno comes back on it. */
static int fork_child(const struct spawn_args *a, pid_t *pid, int *started)
{
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0)
    return errno;
  pid_t child = fork();
  if (child < 0) {
    int err = errno;
    close(ep[0]);
    close(ep[1]);
    return err;
  }
  if (child == 0) {
    int err = child_start(a);
    if (started != NULL) {
      spawn_say_failure(a->fds[2], err, "", a->argv[0]);
      _exit(spawn_failure_code(err));
    }
    ssize_t unused = write(ep[1], &err, sizeof err);
    (void)unused;
    _exit(127);
  }
  close(ep[1]);
  *pid = child;
  if (started != NULL) {
    *started = ep[0];
    return 0;
  }
  int err = 0;
  ssize_t n;
  while ((n = read(ep[0], &err, sizeof err)) < 0 && errno == EINTR)
    ;
  close(ep[0]);
  if (n == (ssize_t)sizeof err) {
    waitpid(child, NULL, 0);
    return err;
  }
  return 0;
}

static int spawn_file(const char *file, const struct spawn_args *a, pid_t *pid)
{
  posix_spawn_file_actions_t fa;
  int err = posix_spawn_file_actions_init(&fa);
  if (err != 0)
    return err;
  /* The sources are >= 3 (init keeps 0..2 open), so no dup2 clobbers one
   * that a later dup2 still needs. */
  for (int i = 0; i < 3 && err == 0; i++)
    err = posix_spawn_file_actions_adddup2(&fa, a->fds[i], i);
  if (err == 0 && a->cwd_fd >= 0)
    err = posix_spawn_file_actions_addfchdir_np(&fa, a->cwd_fd);
  if (err == 0)
    err = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (err == 0)
    err = posix_spawn(pid, file, &fa, &attr, a->argv, a->envp);
  posix_spawn_file_actions_destroy(&fa);
  return err;
}

/* A file of PATH, checked with faccessat first: every failed posix_spawn
 * costs a clone, a successful faccessat costs nothing. */
static int spawn_candidate(const char *file, const struct spawn_args *a, pid_t *pid)
{
  if (faccessat(a->cwd_fd >= 0 ? a->cwd_fd : AT_FDCWD, file, X_OK, AT_EACCESS) < 0)
    return errno == EACCES ? EACCES : ENOENT; /* whatever else it was, the search goes on */
  return spawn_file(file, a, pid);
}

int spawn(const struct spawn_args *a, pid_t *pid, int *started)
{
  /* posix_spawn sets no rlimit: only under gVisor, whose kernel keeps the sandbox's sockets. */
  if (a->pty || !handoff) /* `started` comes only with !handoff (init_exec.c) */
    return fork_child(a, pid, started);
  if (strchr(a->argv[0], '/') != NULL)
    return spawn_file(a->argv[0], a, pid);
  return search_path(a, spawn_candidate, pid);
}

int spawn_failure_code(int err)
{
  switch (err) {
  case EACCES:
  case EPERM:
  case ENOEXEC:
  case EISDIR:
  case ETXTBSY:
    return 126; /* found, but cannot be executed */
  default:
    return 127;
  }
}

void spawn_say_failure(int fd, int err, const char *what, const char *name)
{
  char buf[512];
  int n = snprintf(buf, sizeof buf, "pysandbox: exec: %s%s: %s\n", what, name, strerror(err));
  if (n >= (int)sizeof buf) {
    n = sizeof buf - 1;
    buf[n - 1] = '\n';
  }
  if (n > 0)
    write_nonblock(fd, buf, (size_t)n);
}
