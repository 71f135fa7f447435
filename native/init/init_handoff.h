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
#define RELAY_FDS_MAX 6
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
 * winsize datagrams set the size of the terminal tty; end_fd, a socket init
 * closes once the process has ended: what the terminal holds then goes out and
 * the relay ends, as gVisor's terminal does not hang up; keys_fd, the socket
 * of the terminal's key witness (handoff_start_witness), under gVisor. */
struct relay_terminal {
  int size_fd, tty, end_fd, keys_fd;
};

/* A relay's loop: runs the copies (at most RELAY_COPIES_MAX, each fd made
 * non-blocking, so that one side waiting never holds up the other), and the
 * terminal's sizes, keys and end when t is not NULL.  Exits once it is over. */
_Noreturn void handoff_relay(struct relay_copy *copies, size_t n, struct relay_terminal *t);

/* gVisor's line discipline (runsc 20221219) turns no key into a signal, and
 * tells a terminal's foreground group only to a process of the session it
 * controls (TIOCGPGRP on the master, or from elsewhere, fails; /proc's tpgid
 * is 0).  So, under gVisor, the child that becomes a terminal's session leader
 * calls this once the terminal is its controlling one, before it execs: it
 * starts a witness in that session, a grandchild (init's once the middle
 * child is gone, so the process never sees it) in a process group of its own,
 * which reads a signal number at a time from keys_fd (SIGINT, SIGQUIT or
 * SIGTSTP: the relay's, for ^C, ^\ and ^Z) and sends it to the terminal's
 * foreground group, as Linux's line discipline does.  It ends when the other
 * end of keys_fd closes.  0, or -1 with errno set (EAGAIN: no process). */
int handoff_start_witness(int keys_fd);

/* A terminal's keys socket under gVisor: keys[0] for its relays, keys[1] for
 * handoff_start_witness, both close-on-exec; both -1 under another runner.
 * 0, or -1 with errno set. */
int handoff_keys(int keys[2]);

/* From init's reaping, for every child it collects: a relay's ends. */
void handoff_reaped(pid_t pid);

/* gVisor passes a host socket's SCM_RIGHTS into the sandbox but not out of
 * it: OPEN is relayed instead (protocol.h, PSB_REQ_FILE), as are ENTRY_STDIN
 * and FSOP_WATCH sent with the client's end of the relay; the other requests
 * answered with a descriptor (PIDFD, and those two without an end) are
 * refused, with EPROTONOSUPPORT and this message (the client says which call
 * it was). */
#define HANDOFF_REFUSED_WHY "the gVisor runner cannot hand a descriptor out of the sandbox"
bool handoff_refuses(const struct request *req);

/* And gVisor's terminal (runsc 20221219) has no end of input: its line
 * discipline drops a ^D at the start of a line, and a read of the terminal
 * never returns 0 (not even once its master is closed).  So ENTRY_STDIN_CLOSE
 * under --pty, which would send that ^D, is refused with EPROTONOSUPPORT and
 * this message, and the entrypoint's stdin stays open. */
#define HANDOFF_NO_EOF_WHY "the gVisor runner's terminal has no end of input"

#endif
