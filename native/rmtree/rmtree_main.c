/* rmtree_main.c: sandbox-rmtree, the one way pysandbox removes a tree that
 * sandboxes wrote (a volume, an upper directory, a layer being built).
 *
 *   sandbox-rmtree [USERNS] PATH...          each PATH (its parents are the caller's own)
 *   sandbox-rmtree [USERNS] --at FD NAME     NAME in the inherited directory fd FD
 *
 * USERNS: the supervisor's --userns-uid/--userns-gid/--newuidmap/--newgidmap,
 * for an unprivileged caller whose sandboxes have its subordinate ids: the
 * removal runs in a user namespace mapping them, where the caller may remove
 * what sandbox users other than root wrote (userns.h).
 *
 * rmtree.c never follows a symlink, never leaves the tree's mount, undoes
 * chmod 000 and survives any depth with one directory open at a time: what
 * Python's shutil.rmtree cannot promise against a tree that changes under it.
 * Exits 0, or 1 after saying what it could not remove. */
#define _GNU_SOURCE 1
#include <signal.h> /* signal, SIGCHLD */
#include <string.h> /* strcmp */

#include "rmtree.h"
#include "userns.h"
#include "util.h"

const char *const progname = "sandbox-rmtree";

int main(int argc, char **argv)
{
  /* An ignored SIGCHLD survives exec (a server that ignores it to reap nothing): the
   * kernel would then reap the namespace's maker before userns_finish can. */
  signal(SIGCHLD, SIG_DFL);
  struct userns_plan plan = {0};
  int i = 1;
  while (i + 1 < argc && userns_option(&plan, argv[i], argv[i + 1]))
    i += 2;
  userns_check_plan(&plan);
  if (plan.nuids > 0 && userns_enter(&plan) < 0)
    warnf("removing with the caller's own rights");
  if (argc - i == 3 && strcmp(argv[i], "--at") == 0) {
    uint64_t fd;
    if (!parse_uint(argv[i + 1], 1 << 20, &fd))
      usage_die("bad --at fd: %s", argv[i + 1]);
    return rmtree_at((int)fd, argv[i + 2]) < 0 ? 1 : 0;
  }
  int rc = 0;
  for (; i < argc; i++)
    if (argv[i][0] != '/' ? (warnf("not an absolute path: %s", argv[i]), 1) : rmtree(argv[i]) < 0)
      rc = 1;
  return rc;
}
