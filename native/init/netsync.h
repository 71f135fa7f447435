/* netsync.h: sandbox-init's half of the network handshake (netns.c has the
 * supervisor's). */
#if !defined(PSB_NETSYNC_H)
#define PSB_NETSYNC_H

/* If fd is open: sends the supervisor our pid as SCM_CREDENTIALS (the kernel
 * translates it into the supervisor's pid namespace), then waits until the
 * supervisor writes 'g' once the network is connected, and closes fd.  Dies
 * if the supervisor gives up (end of file) or the socket fails. */
void netsync_wait(int fd);

#endif
