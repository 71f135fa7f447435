/* spawn.h: starting processes from pid 1 (spawn.c). */
#if !defined(PSB_SPAWN_H)
#define PSB_SPAWN_H

#include <sys/types.h> /* pid_t */

struct spawn_args {
  char *const *argv;
  char *const *envp;
  const char *path; /* searched when argv[0] has no '/'; NULL: a default */
  int cwd_fd;       /* directory to run in, or -1 for init's cwd */
  int fds[3];       /* become the child's 0, 1, 2; all >= 3 */
  int pty;          /* fds[0] is a terminal: make it the controlling one */
  int keys_fd;      /* with pty, under gVisor: the socket of the terminal's key witness (init_handoff.h); else -1 */
};

/* Prepares the spawn attributes shared by every child, sandbox code's
 * RLIMIT_NOFILE among them (from init's own: call it after init took its
 * limit).  Dies on failure. */
void spawn_init(void);

/* Starts a child in a new session with default signal dispositions, an empty
 * signal mask and only fds 0..2.  Returns 0 with *pid set, or an errno.
 * With `started` (an exec's child, which sandbox code can stop before its
 * exec) it returns without waiting for the exec: the child says itself why it
 * failed to start, on its fds[2], and exits with spawn_failure_code(), and
 * *started is a pipe that reads end of file once the child exec'd or ended. */
int spawn(const struct spawn_args *a, pid_t *pid, int *started);

/* Exit status a shell would report for a command that failed to start. */
int spawn_failure_code(int err);

/* Writes "pysandbox: exec: <what><name>: <strerror(err)>" to fd, without blocking. */
void spawn_say_failure(int fd, int err, const char *what, const char *name);

#endif
