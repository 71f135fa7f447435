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

/* A relay: a process of init's that copies between the client's descriptor
 * and one of the sandbox's, so that blocking stalls only it, never pid 1.
 * Returns 0 in the child, whose fd 0 is `in`, fd 1 `out`, with no other fd
 * of init's, no blocked signal, and SIGKILL when init dies; the child's pid in
 * init; -1 with errno set: EMFILE with HANDOFF_RELAYS_MAX alive (each is a
 * process, and gVisor's Sentry ends the whole sandbox when its pids run out:
 * a recursive watch over a tree that grows adds one per new directory). */
#define HANDOFF_RELAYS_MAX 64
pid_t handoff_fork_relay(int in, int out);

/* From init's reaping, for every child it collects: a relay's ends. */
void handoff_reaped(pid_t pid);

/* gVisor passes a host socket's SCM_RIGHTS into the sandbox but not out of
 * it: OPEN is relayed instead (protocol.h, PSB_REQ_FILE), as are ENTRY_STDIN
 * and FSOP_WATCH sent with the client's end of the relay; the other requests
 * answered with a descriptor (PIDFD, and those two without an end) are
 * refused, with EPROTONOSUPPORT and this message (the client says which call
 * it was); so is an exec with a pty, before it starts (gVisor cannot make a
 * host terminal a controlling one). */
#define HANDOFF_REFUSED_WHY "the gVisor runner cannot hand a descriptor out of the sandbox"
bool handoff_refuses(const struct request *req);

#endif
