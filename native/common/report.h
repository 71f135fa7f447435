/* report.h: how a one-shot helper (sandbox-mount, sandbox-untree) tells its
 * caller why it failed, on stdout, which the caller reads bounded
 * (pysandbox/_core/mounts.py helper_error):
 *
 *   "E <errno> <what>"   exit 1: a failure, raised with that errno
 *   "B <bound>"          exit 3: a bound ("bytes" or "entries") was reached
 *
 * report.c also gives tree.c's tree_fail and tree_bound these meanings. */
#ifndef PYSANDBOX_REPORT_H
#define PYSANDBOX_REPORT_H

#define REPORT_EXIT_BOUND 3

_Noreturn void report_fail(int err, const char *what);
_Noreturn void report_bound(const char *which);

#endif
