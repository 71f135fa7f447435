/* untree_main.c: sandbox-untree, the reading side of common/tree.h's stream.
 *
 *   sandbox-untree --from FILE --dest DIR --max-bytes N --max-entries N
 *
 * Makes the tree the stream FILE holds beneath the directory DIR, which it
 * opens without following a symlink.  It runs in a helper sandbox (no network,
 * the sandbox owner's identity, image/snapshot.py): the stream came from a
 * sandbox under gVisor, whose code could have written any bytes into it, and
 * is never parsed by a host process.  Names are single components made beneath
 * their directory's fd, so nothing is made outside DIR; the bounds are counted
 * here again.
 *
 * Exit 0; 2 for a bad command line; else 3 for a bound or 1 for anything
 * else, with its report on stdout (report.h). */
#define _GNU_SOURCE 1
#include <errno.h>    /* errno */
#include <fcntl.h>    /* open, O_* */
#include <sys/stat.h> /* umask */

#include "opts.h"
#include "tree.h"
#include "util.h"

const char *const progname = "sandbox-untree";

int main(int argc, char **argv)
{
  (void)argc;
  const char *from = NULL, *dest = NULL;
  uint64_t max_bytes = 0, max_entries = 0;
  struct opt table[] = {
      {.name = "--from", .values = "FILE", .kind = OPT_STRING, .to = &from, .absolute = true, .required = true},
      {.name = "--dest", .values = "DIR", .kind = OPT_STRING, .to = &dest, .absolute = true, .required = true},
      {.name = "--max-bytes",
       .values = "N",
       .kind = OPT_NUMBER,
       .to = &max_bytes,
       .max = UINT64_MAX - 1,
       .required = true},
      {.name = "--max-entries",
       .values = "N",
       .kind = OPT_NUMBER,
       .to = &max_entries,
       .max = UINT64_MAX - 1,
       .required = true},
      {.name = NULL},
  };
  const struct opts opts = {table, NULL};
  if (argv[opts_parse(&opts, argv)] != NULL)
    opts_usage_die(&opts, "no operands");
  umask(077); /* every entry gets its own mode once made */
  int in = open(from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0)
    tree_fail(errno, from);
  int dst = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dst < 0)
    tree_fail(errno, dest);
  struct tree_bounds b = {.max_bytes = max_bytes, .max_entries = max_entries};
  tree_unstream(in, dst, &b);
  return 0;
}
