/* init.h: what the parts of sandbox-init share.  init.c: setup, the main loop
 * and the connection table; init_exec.c: the child table, the timers and
 * EXEC; init_fs.c: OPEN and FSOP; init_entry.c: the entrypoint and its
 * terminal.  pid 1 is single-threaded: this state is touched only from the
 * main loop. */
#if !defined(PSB_INIT_H)
#define PSB_INIT_H

#include <stdbool.h>   /* bool */
#include <stddef.h>    /* size_t */
#include <stdint.h>    /* int64_t, uint16_t */
#include <sys/types.h> /* pid_t */

#include "proto.h"

struct winsize;

struct conn {
  int fd;       /* -1 once dropped; freed at the end of the poll round */
  pid_t pid;    /* the process this connection started, until it is reaped */
  int start_fd; /* until that process exec'd or ended, the pipe that says so (spawn.h); else -1 */
  int file;     /* --handoff: the file an OPEN on it holds open for FILE requests (init_fs.c), or -1 */
  bool file_append;
  int64_t file_offset; /* the client's, not the file's: sandbox code may hold the same open file */
};

/* init.c */
extern char **sandbox_env;    /* the sandbox's environment, from the configuration */
extern int event_fd;          /* the supervisor's event pipe, or -1 */
extern int64_t idle_ms;       /* 0: no idle timeout */
extern int64_t last_activity; /* last request or exec exit */
extern int64_t accept_resume; /* 0: accepting */
extern size_t exec_slots;     /* MAX_EXECS, or what the fd limit allows */
extern char exec_limit_why[160];
extern size_t nlive; /* connections open */
void conn_drop(struct conn *c);
void reply_body(struct conn *c, uint16_t type, const void *body, size_t len, int passfd);
void reply(struct conn *c, uint16_t type, int passfd);
void reply_error(struct conn *c, int err, const char *why);

/* init_exec.c */
void children_forget_conn(const struct conn *c);
void reap(void);
int poll_timeout(int64_t now);
void run_timers(int64_t now);
void handle_exec(struct conn *c, struct request *req);
void exec_started(struct conn *c);

/* init_fs.c */
void handle_open(struct conn *c, const struct request *req);
void handle_fsop(struct conn *c, struct request *req);
void handle_file(struct conn *c, const struct request *req);

/* init_entry.c */
extern int entry_tty; /* --pty: the terminal's master, copied to the stdout pipe */
extern bool entry_tty_hungup;
extern pid_t entry_pid;
void start_entrypoint(char **argv, bool pty);
int open_terminal(const struct winsize *ws, int *slave);
bool copy_terminal_output(void);
bool tty_pending(void);
void handle_entry_stdin(struct conn *c, struct request *req);
void handle_entry_stdin_close(struct conn *c);

#endif
