/* fdutil.h: file descriptor helpers. */
#if !defined(PSB_FDUTIL_H)
#define PSB_FDUTIL_H

#include <stdbool.h> /* bool */
#include <stddef.h>  /* size_t */

bool fd_is_open(int fd);

/* Sets or clears FD_CLOEXEC.  Returns 0 or -1 with errno set. */
int fd_set_cloexec(int fd, bool on);

/* write() until done, retrying on EINTR.  Returns 0 or -1 with errno set. */
int write_all(int fd, const void *buf, size_t len);

/* Writes `text` to the existing file `path` (a /proc or /sys setting).  Returns
 * 0 or -1 with errno set. */
int write_file(const char *path, const char *text);

/* read() of one byte, retrying on EINTR: 0 if it is `want`; -1 at end of file
 * or on another byte (errno EPROTO), or on an error (errno set).  The
 * handshakes' "go on" signal. */
int fd_expect_byte(int fd, char want);

/* One best-effort write that never blocks, for fds a client handed us: a
 * pipe nobody reads must not stall pid 1.  The fd's file status flags are
 * restored afterwards because the client may share the open file. */
void write_nonblock(int fd, const void *buf, size_t len);

/* The most data fd_send_control() carries: 4 fds (handoff.h). */
#define FD_CONTROL_MAX 16

/* One byte carrying one control message of `type` (SCM_RIGHTS)
 * with `len` (<= FD_CONTROL_MAX) bytes of `data`, retried on EINTR; flags:
 * MSG_DONTWAIT or 0 (MSG_NOSIGNAL is always added).  Returns 0 or -1 with errno set. */
int fd_send_control(int sock, int type, const void *data, size_t len, int flags);

/* One byte carrying `fd` (SCM_RIGHTS).  Returns 0 or -1 with errno set. */
int fd_send(int sock, int fd);

/* The fd that fd_send() sent (close-on-exec), or -1. */
int fd_receive(int sock);

#endif
