/* init_handoff.h: sandbox-init under a runner that passes it only its stdio
 * (--handoff; gVisor's runsc): its fds and its connections arrive over stdin
 * (common/handoff.h). */
#if !defined(PSB_INIT_HANDOFF_H)
#define PSB_INIT_HANDOFF_H

#include <stdbool.h>   /* bool */
#include <sys/types.h> /* pid_t */

#include "proto.h"

extern bool handoff; /* --handoff */

/* Before anything reads them: receives the fds of HANDOFF_FDS on stdin and
 * puts them in place (fds.h), makes stdin the "listener" (FD_LISTEN) and
 * /dev/null stdin.  Dies if the supervisor does not send them. */
void handoff_receive(void);

/* accept4() on the listener, as the supervisor hands connections over: one
 * connection (close-on-exec, non-blocking), or -1 with errno set (EAGAIN:
 * none waiting).  The supervisor gone: init exits, the sandbox with it. */
int handoff_accept(void);

/* A relay: a process of init's that copies between the client's descriptors
 * and the sandbox's, so that blocking stalls only it, never pid 1.  Returns 0
 * in the child, whose fds 0..n-1 (n <= RELAY_FDS_MAX) are fds[0..n-1], with no
 * other fd of init's, no blocked signal, and SIGKILL when init dies; the
 * child's pid in init; -1 with errno set: EMFILE with HANDOFF_RELAYS_MAX alive
 * (each is a process, and gVisor's Sentry ends the whole sandbox when its pids
 * run out: a recursive watch over a tree that grows adds one per new
 * directory). */
#define HANDOFF_RELAYS_MAX 64
#define RELAY_FDS_MAX 5
pid_t handoff_fork_relay(const int *fds, int n);

/* One direction a relay copies (handoff_relay).  The relay ends when a copy
 * with ends_relay is over; any other just stops. */
struct relay_copy {
  int from, to;
  bool ends_relay;
  bool open; /* true to start */
  size_t len, sent;
  char buf[65536];
};
#define RELAY_COPIES_MAX 2

/* A relayed terminal's other descriptors (-1: none): a socket whose struct
 * winsize datagrams set the size of the terminal tty, and end_fd, a socket on which
 * init writes the process's pid (pgid, for the keys ISIG turns into signals),
 * then closes once the process has ended: what the terminal holds then goes
 * out and the relay ends, as gVisor's terminal does not hang up. */
struct relay_terminal {
  int size_fd, tty, end_fd;
  pid_t pgid; /* 0 until init sent it */
};

/* A relay's loop: runs the copies (at most RELAY_COPIES_MAX, each fd made
 * non-blocking, so that one side waiting never holds up the other), and the
 * terminal's sizes, keys and end when t is not NULL.  Exits once it is over. */
_Noreturn void handoff_relay(struct relay_copy *copies, size_t n, struct relay_terminal *t);

/* From init's reaping, for every child it collects: a relay's ends. */
void handoff_reaped(pid_t pid);

/* gVisor passes a host socket's SCM_RIGHTS into the sandbox but not out of
 * it: OPEN is relayed instead (protocol.h, PSB_REQ_FILE), as are ENTRY_STDIN
 * and FSOP_WATCH sent with the client's end of the relay; the other requests
 * answered with a descriptor (PIDFD, and those two without an end) are
 * refused, with EPROTONOSUPPORT and this message (the client says which call
 * it was); so is an exec with a host terminal (PSB_EXEC_FLAG_PTY), before it
 * starts: gVisor cannot make one a controlling terminal, so the client sends
 * pipes instead (PSB_EXEC_FLAG_PTY_INSIDE) and init relays a terminal of its
 * own (init_exec.c). */
#define HANDOFF_REFUSED_WHY "the gVisor runner cannot hand a descriptor out of the sandbox"
bool handoff_refuses(const struct request *req);

#endif
