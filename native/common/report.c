/* report.c: a helper's failure report (report.h). */
#include "report.h"

#include <stdio.h>  /* printf */
#include <stdlib.h> /* exit */

#include "tree.h"
#include "util.h"

_Noreturn void report_fail(int err, const char *what)
{
  printf("E %d %s\n", err, what);
  fflush(stdout);
  msg(err, "%s", what);
  exit(1);
}

_Noreturn void report_bound(const char *which)
{
  printf("B %s\n", which);
  fflush(stdout);
  exit(REPORT_EXIT_BOUND);
}

_Noreturn void tree_fail(int err, const char *what)
{
  report_fail(err, what);
}

_Noreturn void tree_bound(const char *which)
{
  report_bound(which);
}
