/* stage.h: a private mount namespace that makes host paths reachable for an
 * unprivileged sandbox identity. */
#if !defined(PSB_STAGE_H)
#define PSB_STAGE_H

#include <stdbool.h>   /* bool */
#include <stddef.h>    /* size_t */
#include <sys/types.h> /* dev_t, ino_t */

struct stage_bind {
  const char *src;  /* absolute host path */
  const char *name; /* one path component under the stage directory */
  bool checked;     /* a directory sandboxes write to (a volume): */
  dev_t dev;        /*   the mount must be this very directory, */
  ino_t ino;        /*   and it is made nosuid and nodev */
};

/* In the runner child, while still privileged (root, or root of the sandbox's
 * user namespace): unshares the mount namespace, makes dir if it is missing,
 * mounts a small tmpfs on it and bind-mounts every src to dir/name.  A
 * checked src whose path led elsewhere (a symlink swapped in after the host
 * opened it) fails the whole staging before anything else sees it.
 * Reports what failed on stderr and returns -1 with errno set, or 0. */
int stage_mounts(const char *dir, const struct stage_bind *binds, size_t nbinds);

/* The root of a runner that takes a directory (gVisor's runsc), made in the
 * namespace stage_mounts made, after it: `fstype` with `data` mounted nosuid
 * and nodev on dir/STAGE_OVERLAY_NAME.  An image's overlayfs (lowerdir=,
 * upperdir=, workdir=: paths the host chose, never the image), or the host
 * image's tmpfs (size=: its disk bound), with its /tmp (STAGE_ROOT_TMP: 1777,
 * owned as the tmpfs's root) for runsc to bind there.  It dies with the
 * namespace: nothing on the host is left mounted.  -1 with errno (reported on
 * stderr), or 0. */
#define STAGE_OVERLAY_NAME "root"
#define STAGE_ROOT_TMP "tmp"
int stage_root(const char *dir, const char *fstype, const char *data);

#endif
