/* spare.h: a warm spare, a supervisor started before its sandbox is asked for.
 *
 *   sandbox-supervisor --spare --room TEXT [--no-namespaces] [IDENTITY-OPTION...]
 *
 * A creator starts one after a create, so that its next create skips a
 * supervisor's start and the making of the sandbox's namespaces.  The spare
 * makes the user namespaces (userns.h) for the identity its options name
 * (--as-uid/--as-gid and the --userns-* options, as a supervisor's) and a
 * network namespace in them, loopback up (netns.h), then waits on fd 0, a
 * SOCK_SEQPACKET socket, for one message: a supervisor's whole command line
 * (argv[0] first, each word NUL-ended) with the descriptors fds.h gives a
 * supervisor, in this order: 0, 1 (which is 2 too), 3, 4, 5, 8 and, if sent,
 * 9.  It answers one byte, 't' (taken), puts them in place and goes on as
 * that supervisor: a creator that finds it already ended (a sandbox that ran
 * and exited at once) tells so from one that died before taking the claim.
 * End of file first (its creator is gone, or let it go), or SIGTERM, SIGINT
 * or SIGHUP while no claim is there to read: it exits, having started
 * nothing.  One that comes with the claim (a terminate() right after the
 * create) stays pending for the supervisor it becomes.
 *
 * --room: its length is the room for that command line in /proc/PID/cmdline,
 * where ps and the tests find a supervisor's sandbox (its --dir); a longer one
 * is cut short there.
 *
 * The namespaces are the sandbox's only if its options name the same identity
 * (spare_fits) and it sets no RLIMIT_NPROC (--nproc: a user namespace keeps
 * its creator's, which the spare's was not); otherwise, when making them
 * failed, or with --no-namespaces (its creator's last sandbox had --nproc:
 * so will the next, most likely), the runner child makes them as a
 * supervisor started without a spare does.  Each is used once: a spare
 * serves one sandbox. */
#if !defined(PSB_SPARE_H)
#define PSB_SPARE_H

#include <signal.h>    /* sigset_t */
#include <stdbool.h>   /* bool */
#include <sys/types.h> /* uid_t, gid_t */

#include "userns.h"

struct spare {
  int userns, netns; /* close-on-exec, above fds.h's range; -1: none */
  bool as_user;
  uid_t uid;
  gid_t gid;
  struct userns_plan plan; /* what they were made for */
};

/* The spare's whole life up to its claim (argv: its own command line): returns
 * the claim's command line, with its descriptors in place; exits on end of file. */
char **spare_wait(char **argv, struct spare *s);

/* Whether the namespaces fit a supervisor with this identity and plan. */
bool spare_fits(const struct spare *s, bool as_user, uid_t uid, gid_t gid, const struct userns_plan *p);

/* Adds (or removes) a supervisor's termination signals, SIGTERM, SIGINT and SIGHUP, to `set`: its creator
 * starts it, spare or not, with them blocked (launch.SUPERVISOR_SIGNALS); its children get them back. */
void termination_signals(sigset_t *set, bool add);

/* Closes the namespaces (the supervisor once its runner child has them, or when they do not fit). */
void spare_release(struct spare *s);

#endif
