/* mkdirs.h: the directories no runner makes (/root, the working directory): made by
 * sandbox-init inside the sandbox before it runs anything, where an image's symlinks
 * lead only into the sandbox's own tree (a runner would follow them on the host). */
#if !defined(PSB_MKDIRS_H)
#define PSB_MKDIRS_H

#include <sys/types.h> /* mode_t */

/* mkdir -p: missing parents get 0755, a missing `path` itself exactly `mode`
 * (whatever the umask); what already exists is left as it is, like bwrap's --dir; a
 * dangling symlink on the way gets its target made (up to 40 links).
 * Returns 0, or -1 with errno set. */
int make_dirs(const char *path, mode_t mode);

#endif
