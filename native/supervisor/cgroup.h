/* cgroup.h: the supervisor's part of a sandbox's cgroup (Python makes it and
 * writes its limits; see pysandbox/runtime/cgroups). */
#if !defined(PSB_CGROUP_H)
#define PSB_CGROUP_H

#include <stdbool.h>   /* bool */
#include <stddef.h>    /* size_t */
#include <stdint.h>    /* uint64_t */
#include <sys/types.h> /* pid_t */

/* Read from the cgroup before it is removed, for the exit record.  Each
 * value is summed over the directories that have it (v1: one per hierarchy). */
struct cgroup_totals {
  bool have_oom, have_cpu, have_peak;
  uint64_t oom_kills, cpu_usec, memory_peak;
};

/* Moves the calling process into the cgroup directory dir.  -1 with errno. */
int cgroup_join(const char *dir);

/* fork(), but with a single v2 cgroup the child starts in it (clone3 with
 * CLONE_INTO_CGROUP: no migration, so no threadgroup lock and no RCU grace
 * period); *placed then tells the child it need not cgroup_join.  Falls back
 * to fork() where the kernel cannot. */
pid_t cgroup_fork(const char *const *dirs, size_t ndirs, bool *placed);

/* Adds dir's totals to *t, kills whatever is still in it and removes it.
 * Failures are reported on stderr; teardown goes on. */
void cgroup_teardown(const char *dir, struct cgroup_totals *t);

#endif
