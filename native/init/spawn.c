/* spawn.c: starting processes from pid 1 with posix_spawn.
 *
 * posix_spawn rather than fork: glibc implements it with CLONE_VM|CLONE_VFORK,
 * which does not copy init's page tables; fork of a static binary is several
 * times slower and exec latency is what clients measure. */
#define _GNU_SOURCE 1
#include "spawn.h"

#include <errno.h>     /* ENOENT, ENOTDIR, EACCES, ... */
#include <fcntl.h>     /* AT_FDCWD, AT_EACCESS */
#include <limits.h>    /* PATH_MAX, INT_MAX */
#include <signal.h>    /* sigset_t, sigemptyset */
#include <spawn.h>     /* posix_spawn* */
#include <string.h>    /* strchr, strchrnul, strlen, memcpy, memset */
#include <sys/ioctl.h> /* ioctl, TIOCSCTTY */
#include <sys/wait.h>  /* waitpid */
#include <unistd.h>    /* faccessat, X_OK, fork, setsid, dup2, close_range */

#include "util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static posix_spawnattr_t attr;

void spawn_init(void)
{
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

/* exec(pty=True): the child must make its terminal the controlling one
 * (TIOCSCTTY), which posix_spawn cannot do, so these few take the slower
 * fork.  An exec failure comes back through a close-on-exec pipe. */
static int fork_with_terminal(const char *file, const struct spawn_args *a, pid_t *pid)
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
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++)
      signal(sig, SIG_DFL); /* fails harmlessly for SIGKILL, SIGSTOP and glibc's own */
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0 || setsid() < 0)
      goto fail;
    for (int i = 0; i < 3; i++)
      if (dup2(a->fds[i], i) < 0)
        goto fail;
    if (ioctl(0, TIOCSCTTY, 0) < 0 || (a->cwd_fd >= 0 && fchdir(a->cwd_fd) < 0) ||
        close_range(3, INT_MAX, CLOSE_RANGE_CLOEXEC) < 0)
      goto fail;
    execve(file, a->argv, a->envp);
  fail:;
    int err = errno;
    ssize_t unused = write(ep[1], &err, sizeof err);
    (void)unused;
    _exit(127);
  }
  close(ep[1]);
  int err = 0;
  ssize_t n;
  while ((n = read(ep[0], &err, sizeof err)) < 0 && errno == EINTR)
    ;
  close(ep[0]);
  if (n == (ssize_t)sizeof err) {
    waitpid(child, NULL, 0);
    return err;
  }
  *pid = child;
  return 0;
}

static int spawn_file(const char *file, const struct spawn_args *a, pid_t *pid)
{
  if (a->pty)
    return fork_with_terminal(file, a, pid);
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

int spawn(const struct spawn_args *a, pid_t *pid)
{
  const char *name = a->argv[0];
  if (strchr(name, '/') != NULL)
    return spawn_file(name, a, pid);
  if (*name == '\0')
    return ENOENT;

  /* execvp's search, but over the child's PATH (posix_spawnp would use
   * init's).  Candidates are checked with faccessat first: every failed
   * posix_spawn costs a clone, a successful faccessat costs nothing. */
  size_t namelen = strlen(name);
  int dirfd = a->cwd_fd >= 0 ? a->cwd_fd : AT_FDCWD;
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
      if (faccessat(dirfd, file, X_OK, AT_EACCESS) == 0) {
        int err = spawn_file(file, a, pid);
        if (err != ENOENT && err != ENOTDIR && err != EACCES)
          return err;
        eacces |= err == EACCES;
      } else {
        eacces |= errno == EACCES;
      }
    }
    if (*colon == '\0')
      break;
    p = colon;
  }
  return eacces ? EACCES : ENOENT;
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
