/* cgroup.h: the supervisor's part of a sandbox's cgroup (Python makes it and
 * writes its limits; see pysandbox/runtime/cgroups). */
#if !defined(PSB_CGROUP_H)
#define PSB_CGROUP_H

#include <stdbool.h> /* bool */
#include <stdint.h>  /* uint64_t */

/* Read from the cgroup before it is removed, for the exit record.  Each
 * value is summed over the directories that have it (v1: one per hierarchy). */
struct cgroup_totals {
  bool have_oom, have_cpu, have_peak;
  uint64_t oom_kills, cpu_usec, memory_peak;
};

/* Moves the calling process into the cgroup directory dir.  -1 with errno. */
int cgroup_join(const char *dir);

/* Adds dir's totals to *t, kills whatever is still in it and removes it.
 * Failures are reported on stderr; teardown goes on. */
void cgroup_teardown(const char *dir, struct cgroup_totals *t);

#endif
