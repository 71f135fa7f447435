/* watch.h: inotify watches set up inside the sandbox for the host's client. */
#if !defined(PSB_WATCH_H)
#define PSB_WATCH_H

#include <stdbool.h> /* bool */
#include <stddef.h>  /* size_t */

/* An inotify fd (non-blocking, close-on-exec) watching `path`, and with
 * `recursive` every directory below it.  `out` receives, per watch, an int32
 * watch descriptor then the NUL-terminated path relative to `path` ("" for
 * `path` itself).  Returns the fd, or -1 with errno set (E2BIG: `out` is too
 * small for the tree). */
int watch_open(const char *path, bool recursive, char *out, size_t cap, size_t *used);

#endif
