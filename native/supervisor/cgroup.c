/* cgroup.c: joining a sandbox's cgroup, and emptying and removing it.
 *
 * The runner child joins before it drops privileges and execs bwrap, so no
 * process of the sandbox ever runs outside the cgroup (it is single-threaded,
 * which cgroup_join relies on).  At teardown the
 * sandbox's pid namespace is already gone (supervisor.c kills and reaps it);
 * whatever is still listed is killed here all the same, through cgroup.kill
 * where the kernel has it, else one pidfd at a time. */
#define _GNU_SOURCE 1
#include "cgroup.h"

#include <errno.h>       /* errno, EBUSY, ENOENT */
#include <fcntl.h>       /* open, O_* */
#include <linux/sched.h> /* struct clone_args, CLONE_INTO_CGROUP */
#include <signal.h>      /* SIGKILL */
#include <stdio.h>       /* snprintf */
#include <stdlib.h>      /* strtoull */
#include <string.h>      /* strlen, strncmp */
#include <sys/syscall.h> /* SYS_pidfd_open, SYS_pidfd_send_signal */
#include <time.h>        /* nanosleep */
#include <unistd.h>      /* read, write, close, rmdir, getpid, syscall */

#include "fdutil.h"
#include "util.h"

enum { REMOVE_PATIENCE_MS = 2000 };

/* Reads dir/name into buf (NUL-terminated); the length or -1. */
static ssize_t read_file(const char *dir, const char *name, char *buf, size_t size)
{
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
    return -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n, total = 0;
  while ((size_t)total < size - 1 && (n = read(fd, buf + total, size - 1 - (size_t)total)) > 0)
    total += n;
  close(fd);
  buf[total] = '\0';
  return total;
}

static int write_setting(const char *dir, const char *name, const char *value)
{
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return write_file(path, value);
}

/* The number in dir/name (key == NULL), or on its "key N" line. */
static bool read_number(const char *dir, const char *name, const char *key, uint64_t *out)
{
  char buf[4096];
  if (read_file(dir, name, buf, sizeof buf) < 0)
    return false;
  size_t klen = key != NULL ? strlen(key) : 0;
  for (char *line = buf; *line != '\0';) {
    if (key == NULL || (strncmp(line, key, klen) == 0 && line[klen] == ' ')) {
      char *end;
      errno = 0;
      *out = strtoull(line + klen, &end, 10);
      return errno == 0 && end != line + klen;
    }
    char *nl = strchr(line, '\n');
    if (nl == NULL)
      break;
    line = nl + 1;
  }
  return false;
}

/* v1: "0" into `tasks` moves the calling thread, which for our single-threaded
 * runner is the whole process, and lets the kernel skip the global threadgroup
 * lock whose writer waits for an RCU grace period (10 ms on a loaded host;
 * writing to cgroup.procs takes it).  v2 has no `tasks`: cgroup.procs. */
int cgroup_join(const char *dir)
{
  if (write_setting(dir, "tasks", "0") == 0)
    return 0;
  if (errno != ENOENT)
    return -1;
  char pid[24];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  return write_setting(dir, "cgroup.procs", pid);
}

pid_t cgroup_fork(const char *const *dirs, size_t ndirs, bool *placed)
{
  *placed = false;
  char probe[4096];
  if (ndirs != 1 || (size_t)snprintf(probe, sizeof probe, "%s/tasks", dirs[0]) >= sizeof probe ||
      access(probe, F_OK) == 0) /* v1 has `tasks` */
    return fork();
  int cgfd = open(dirs[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cgfd < 0)
    return fork(); /* cgroup_join in the child reports it */
  struct clone_args args = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cgfd};
  pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
  int err = errno;
  close(cgfd);
  if (pid >= 0) {
    *placed = true;
    return pid;
  }
  errno = err;
  return fork(); /* kernel before 5.7, or a cgroup it refuses: join the slow way */
}

/* Adds the number in dir/name (on its key line) / divisor to *sum, if there is one. */
static void add(bool *have, uint64_t *sum, const char *dir, const char *name, const char *key, uint64_t divisor)
{
  uint64_t v;
  if (read_number(dir, name, key, &v)) {
    *have = true;
    *sum += v / divisor;
  }
}

static void read_totals(const char *dir, struct cgroup_totals *t)
{
  add(&t->have_oom, &t->oom_kills, dir, "memory.events", "oom_kill", 1);          /* v2 */
  add(&t->have_oom, &t->oom_kills, dir, "memory.oom_control", "oom_kill", 1);     /* v1 */
  add(&t->have_cpu, &t->cpu_usec, dir, "cpu.stat", "usage_usec", 1);              /* v2 */
  add(&t->have_cpu, &t->cpu_usec, dir, "cpuacct.usage", NULL, 1000);              /* v1, ns */
  add(&t->have_peak, &t->memory_peak, dir, "memory.peak", NULL, 1);               /* v2 */
  add(&t->have_peak, &t->memory_peak, dir, "memory.max_usage_in_bytes", NULL, 1); /* v1 */
}

/* True if pid is listed in dir/cgroup.procs. */
static bool is_member(const char *dir, long pid)
{
  char buf[65536];
  if (read_file(dir, "cgroup.procs", buf, sizeof buf) < 0)
    return false;
  for (char *p = buf, *end; *p != '\0'; p = end) {
    long member = strtol(p, &end, 10);
    if (end == p)
      break;
    if (member == pid)
      return true;
  }
  return false;
}

/* SIGKILL each listed process through a pidfd opened and then re-checked as
 * a member, so a pid reused by a process elsewhere is never signalled. */
static void kill_members(const char *dir)
{
  if (write_setting(dir, "cgroup.kill", "1") == 0)
    return;
  char buf[65536];
  if (read_file(dir, "cgroup.procs", buf, sizeof buf) < 0)
    return;
  for (char *p = buf, *end; *p != '\0'; p = end) {
    long pid = strtol(p, &end, 10);
    if (end == p)
      break;
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (pidfd < 0)
      continue;
    if (is_member(dir, pid))
      syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    close(pidfd);
  }
}

void cgroup_teardown(const char *dir, struct cgroup_totals *t)
{
  read_totals(dir, t);
  int64_t deadline = now_ms() + REMOVE_PATIENCE_MS;
  for (;;) {
    kill_members(dir);
    if (rmdir(dir) == 0 || errno == ENOENT)
      return;
    if (errno != EBUSY || now_ms() > deadline) {
      pwarnf("rmdir %s", dir);
      return;
    }
    /* Killed tasks leave the cgroup once the kernel has finished them. */
    nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
  }
}
