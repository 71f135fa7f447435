/* handoff.h: descriptors handed over a unix socket (SCM_RIGHTS), for a runner
 * that passes the sandbox no descriptor but its stdio (gVisor's runsc): the
 * supervisor gives the runner one end of a SOCK_SEQPACKET socketpair as stdin,
 * sends init its fds (HANDOFF_FDS, fds.h) in one message, then each connection
 * it accepts on the listener, one per message.  gVisor serves a host socket's
 * SCM_RIGHTS into the sandbox, but refuses accept() on a host listener. */
#if !defined(PSB_HANDOFF_H)
#define PSB_HANDOFF_H

#include <stddef.h> /* size_t */

/* What init gets in the first message, in this order. */
#define HANDOFF_FDS \
  { \
    FD_ENTRY_OUT, FD_ENTRY_ERR, FD_EVENT, FD_INIT_CONFIG \
  }
#define HANDOFF_NFDS 4

/* One message carrying fds[0..n-1] (n <= HANDOFF_NFDS).  Returns 0, or -1 with
 * errno set.  flags: MSG_DONTWAIT or 0; MSG_NOSIGNAL is always added. */
int handoff_send(int sock, const int *fds, size_t n, int flags);

/* One message: its fds (close-on-exec) into fds[0..max-1].  Returns how many,
 * 0 at end of file, or -1 with errno set (EPROTO: a message without fds, or
 * with more than max, whose fds are closed).  flags: MSG_DONTWAIT or 0. */
int handoff_recv(int sock, int *fds, size_t max, int flags);

#endif
