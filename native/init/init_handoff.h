/* init_handoff.h: sandbox-init under a runner that passes it only its stdio
 * (--handoff; gVisor's runsc): its fds and its connections arrive over stdin
 * (common/handoff.h). */
#if !defined(PSB_INIT_HANDOFF_H)
#define PSB_INIT_HANDOFF_H

#include <stdbool.h> /* bool */

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

/* gVisor passes a host socket's SCM_RIGHTS into the sandbox but not out of
 * it: OPEN is relayed instead (protocol.h, PSB_REQ_FILE), and the other
 * requests answered with a descriptor are refused, with
 * EPROTONOSUPPORT and this message (the client says which call it was); so is
 * an exec with a pty, before it starts (gVisor cannot make a host terminal a
 * controlling one). */
#define HANDOFF_REFUSED_WHY "the gVisor runner cannot hand a descriptor out of the sandbox"
bool handoff_refuses(const struct request *req);

#endif
