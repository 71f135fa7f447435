/* netsync.h: sandbox-init's half of the network handshake (netns.c has the
 * supervisor's). */
#if !defined(PSB_NETSYNC_H)
#define PSB_NETSYNC_H

/* If fd is open: tells the supervisor init runs (one byte, 'i'), then waits
 * until the supervisor writes 'g' once the network is connected, and closes fd.
 * Dies if the supervisor gives up (end of file) or the socket fails. */
void netsync_wait(int fd);

#endif
