/* mkdirs.h: the directories a runner does not make itself (nsjail makes only
 * mount points), made by sandbox-init inside the sandbox before it runs anything. */
#if !defined(PSB_MKDIRS_H)
#define PSB_MKDIRS_H

#include <sys/types.h> /* mode_t */

/* mkdir -p: missing parents get 0755, a missing `path` itself exactly `mode`
 * (whatever the umask); what already exists is left as it is, like bwrap's --dir.
 * Returns 0, or -1 with errno set. */
int make_dirs(const char *path, mode_t mode);

#endif
