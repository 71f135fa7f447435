/* netns.h: user-mode networking for a sandbox's network namespace. */
#if !defined(PSB_NETNS_H)
#define PSB_NETNS_H

#include <signal.h>    /* sigset_t */
#include <stdbool.h>   /* bool */
#include <stddef.h>    /* size_t */
#include <stdint.h>    /* uint64_t */
#include <sys/types.h> /* pid_t */

#include "dnsfilter.h"

struct net_forward {
  unsigned host_port;  /* on the host's 127.0.0.1 */
  unsigned guest_port; /* in the sandbox */
};

struct net_options {
  const char *helper; /* slirp4netns; NULL: the sandbox keeps loopback only */
  const char *dir;    /* owned by the sandbox identity: the helper's api socket */
  const char *nft;    /* nft, run in the sandbox's user and network namespaces */
  const char *rules;  /* the nftables ruleset it loads */
  bool own_stack;     /* the runner serves the links with a TCP/IP stack of its own (gVisor): see
                       * net_make_namespace_for_root; the ruleset hooks tap0, loaded once it exists */
  struct net_forward *forwards;
  size_t nforwards;
  struct dns_options dns; /* the DNS filter's (dnsfilter.h) */
  uint64_t host_max;      /* the host's addresses refused at most (hostaddr.h); 0: none refused */
};

/* In a forked child, before it execs a helper: take the sandbox identity
 * (drop root, when the supervisor runs as root).  Returns -1 with errno. */
typedef int (*enter_identity_fn)(void);

/* fork() for a helper that parses what sandbox code sends; for a root caller, a child in a pid
 * and a mount namespace of its own, with a /proc of that namespace and with `tun` a private
 * /dev/net/tun open to the sandbox identity (see netns.c).  The child exits if those fail. */
pid_t net_fork_helper(bool tun);

/* In a forked child, before it execs or serves: /dev/null as stdin, the
 * supervisor's original signal mask, the sandbox identity, death with
 * `parent`.  Exits the child on failure. */
void net_child_prepare(const sigset_t *mask, enter_identity_fn enter_identity, pid_t parent);

/* In the supervisor's runner child, in the sandbox's user namespace, before it
 * execs the runner: a new network namespace with loopback up, which the runner
 * keeps (it makes none of its own, whatever the mode), or, `premade` (else -1),
 * one a spare made so beforehand (spare.h), joined.  With the default network,
 * `sock` (the handshake socket; else -1) carries it to the supervisor, which
 * connects it while the runner sets up the rest.  0, or -1 after saying why. */
int net_make_namespace(int premade, int sock);

/* For a runner that runs its own TCP/IP stack on the namespace's links (gVisor's runsc, which copies the
 * links, addresses and routes it finds when it starts), in the runner child, in the namespace handed over
 * on `sock`: hides what runsc takes for the host's namespace (hide_root_netns_probe) and waits until the
 * supervisor has connected it and its egress filter holds.  0, or -1 after saying why. */
int net_own_stack_ready(int sock);

/* A new network namespace made in `userns` (by a child that joins it), loopback up: its fd
 * (close-on-exec), or -1 after saying why. */
int net_namespace_in(int userns);

/* net_make_namespace and net_own_stack_ready for such a runner run as root outside the sandbox's user
 * namespace (runsc for a root caller, which makes its own): the namespace is made in `userns` (so the
 * helpers, as the sandbox identity, can connect it) and joined by the caller, which stays where it is.
 * 0, or -1 after saying why. */
int net_make_namespace_for_root(int userns, int sock);

/* Connects `netns` (the sandbox's, from net_make_namespace; its init is held in
 * the handshake of netsync.c until the supervisor releases it) to the outside:
 * starts the helper on it, adds the port forwards, loads the egress filter (with
 * the host's addresses in its sets) and starts the DNS filter (which keeps them
 * current), all as the sandbox identity: the helper and the first load through
 * `enter_sandbox` (in the sandbox's cgroups too), the DNS filter through
 * `enter_identity` only.  The helper exits when *exit_w is closed (and is
 * killed at teardown with the other children).
 * Returns 0, or -1 after saying on stderr what failed. */
int net_connect(const struct net_options *opt, int netns, const sigset_t *mask, enter_identity_fn enter_sandbox,
                enter_identity_fn enter_identity, int *exit_w);

/* Waits for the sandbox's init to report on `sock` (netsync.c): 0, or -1 if the
 * sandbox failed first or the setup timeout passed. */
int net_wait_init(int sock);

#endif
