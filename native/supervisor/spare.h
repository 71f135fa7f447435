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
 * 9.  It puts them in place and goes on as that supervisor.  End of file first
 * (its creator is gone, or let it go), or SIGTERM, SIGINT or SIGHUP while no
 * claim is there to read: it exits, having started nothing.  One that comes
 * with the claim (a terminate() right after the create) stays pending for the
 * supervisor it becomes.
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
 * serves one sandbox.
 *
 * With --net-filter NFT --net-rules RULESET [--net-host-max N] (its creator's
 * last sandbox had the default network: so will the next, most likely) it
 * also loads that egress filter into the network namespace, as the sandbox
 * identity, the way the supervisor does (netns.h: net_preload), taking nft's
 * exec and transaction off the next create's path.  The namespace is the
 * sandbox's only if the claim asks for that very filter and the host's
 * addresses did not change meanwhile (net_preload_fits; the host watch was
 * opened before they were read): else the runner child makes a fresh one. */
#if !defined(PSB_SPARE_H)
#define PSB_SPARE_H

#include <signal.h>    /* sigset_t */
#include <stdbool.h>   /* bool */
#include <sys/types.h> /* uid_t, gid_t */

#include "netns.h"
#include "userns.h"

struct spare {
  int userns, netns; /* close-on-exec, above fds.h's range; -1: none */
  bool as_user;
  uid_t uid;
  gid_t gid;
  struct userns_plan plan;     /* what they were made for */
  struct net_preloaded filter; /* filter.rules NULL: none asked for */
  bool filtered;               /* loaded into netns */
};

/* A supervisor's before, and without, a spare: nothing held. */
#define SPARE_NONE \
  { \
    .userns = -1, .netns = -1, .filter = {.hosts = {-1, -1, -1, NULL} } \
  }

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

/* Whether the network namespace holds the egress filter `net` asks for (net_preload_fits).  If it holds
 * another (or one loaded before the host's addresses changed), it is closed: the runner child makes one. */
bool spare_filter_fits(struct spare *s, const struct net_options *net);

/* Moves the loaded filter's state to `out` (the supervisor's, for net_connect). */
void spare_take_filter(struct spare *s, struct net_preloaded *out);

#endif
