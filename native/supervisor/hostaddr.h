/* hostaddr.h: the host's own addresses, which a sandbox's default network refuses, and their changes. */
#if !defined(PSB_HOSTADDR_H)
#define PSB_HOSTADDR_H

#include <stdbool.h> /* bool */
#include <stddef.h>  /* size_t */

/* Two NETLINK_ROUTE sockets of the network namespace they were made in (the host's): `events` subscribed
 * to its address and route changes, `query` for the dumps.  They stay the host's after a setns.
 * `loaded`: the commands (host_elements) the sets were loaded with; `armed`: a pipe's read end, which
 * gives '1' once they were (the ruleset holding the sets is in), when updates may start. */
struct host_watch {
  int events, query, armed;
  const char *loaded;
};

/* The egress filter's table, "inet pysandbox" or, on a runner's own stack (tap0's hook), "netdev pysandbox"
 * (netplan.egress_rules): its sets host4 and host6 hold the host's addresses. */
const char *host_table(bool own_stack);

/* Opens the sockets in the caller's network namespace.  0, or -1 after saying why. */
int host_watch_open(struct host_watch *w);

/* Closes what is open of them; both -1 after. */
void host_watch_close(struct host_watch *w);

/* Reads every queued notification: whether one may have changed the host's local addresses (an address
 * or a local route, or an overflow of the socket's queue, which may have lost one). */
bool host_watch_changed(int events);

/* The buffer host_elements needs for `max` addresses. */
size_t host_elements_size(size_t max);

/* Writes at buf the nft commands that add the host's current local addresses (its addresses and local
 * routes, loopback's and link-local ones aside, each once) to `table`'s sets.  `size` from
 * host_elements_size.  Returns the length, or -1 after saying why (the dump failed or took over a second,
 * or the host has more than `max`). */
int host_elements(int query, const char *table, size_t max, char *buf, size_t size);

#endif
