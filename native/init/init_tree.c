/* init_tree.c: FSOP TREE, a directory's tree written into the host's socket
 * as common/tree.h's stream (init_tree.h). */
#define _GNU_SOURCE 1
#include "init_tree.h"

#include <errno.h>  /* errno */
#include <fcntl.h>  /* open, O_* */
#include <limits.h> /* NAME_MAX */
#include <string.h> /* strnlen */
#include <unistd.h> /* close, _exit */

#include "fdutil.h"
#include "init.h"
#include "init_handoff.h"
#include "tree.h"

/* The tree's walk (common/tree.h), in a process of init's: its failure
 * ends the stream with a FAIL record (best effort: the socket may be what
 * failed); the host bounds the stream, so the walk counts without bounds. */
_Noreturn void tree_fail(int err, const char *what)
{
  struct tree_record r = {.kind = TREE_FAIL, .size = (uint64_t)err};
  size_t len = strnlen(what, NAME_MAX);
  r.name_len = (uint32_t)len;
  if (write_all(1, &r, sizeof r) == 0)
    write_all(1, what, len);
  _exit(1);
}

_Noreturn void tree_bound(const char *which)
{
  tree_fail(E2BIG, which); /* never: the walk here has no bounds */
}

static _Noreturn void write_tree(void)
{
  int out = 1;
  struct tree_bounds b = {.max_bytes = UINT64_MAX, .max_entries = UINT64_MAX};
  tree_walk(0, 0, &tree_stream, &out, &b);
  _exit(0);
}

/* The directory opened here, so that a missing path or one that is no
 * directory is the reply's error (O_NONBLOCK: a FIFO planted there cannot
 * block pid 1); the walk then runs in a relay (handoff_fork_relay), which
 * blocks on the host's socket instead of pid 1. */
void reply_tree(struct conn *c, const char *path, int sock)
{
  if (sock < 0) {
    reply_error(c, EINVAL, "a tree needs the socket it is written into");
    return;
  }
  int dir = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
  int refused = dir < 0 ? errno : tree_source_refused(dir);
  if (refused != 0) {
    reply_error(c, refused, path);
    if (dir >= 0)
      close(dir);
    return;
  }
  pid_t pid = handoff_fork_relay((int[]){dir, sock}, 2);
  if (pid == 0)
    write_tree();
  if (pid < 0)
    reply_error(c, errno, errno == EMFILE ? "too many relays out of the sandbox at once" : "fork");
  else
    reply(c, PSB_REP_OK, -1);
  close(dir);
}
