/* rmtree_main.c: sandbox-rmtree, the one way pysandbox removes a tree that
 * sandboxes wrote (a volume, an upper directory, a layer being built).
 *
 *   sandbox-rmtree PATH...          each PATH (its parents are the caller's own)
 *   sandbox-rmtree --at FD NAME     NAME in the inherited directory fd FD
 *
 * rmtree.c never follows a symlink, never leaves the tree's mount, undoes
 * chmod 000 and survives any depth with one directory open at a time: what
 * Python's shutil.rmtree cannot promise against a tree that changes under it.
 * Exits 0, or 1 after saying what it could not remove. */
#define _GNU_SOURCE 1
#include <string.h> /* strcmp */

#include "rmtree.h"
#include "util.h"

const char *const progname = "sandbox-rmtree";

int main(int argc, char **argv)
{
  if (argc == 4 && strcmp(argv[1], "--at") == 0) {
    uint64_t fd;
    if (!parse_uint(argv[2], 1 << 20, &fd))
      usage_die("bad --at fd: %s", argv[2]);
    return rmtree_at((int)fd, argv[3]) < 0 ? 1 : 0;
  }
  int rc = 0;
  for (int i = 1; i < argc; i++)
    if (argv[i][0] != '/' ? (warnf("not an absolute path: %s", argv[i]), 1) : rmtree(argv[i]) < 0)
      rc = 1;
  return rc;
}
