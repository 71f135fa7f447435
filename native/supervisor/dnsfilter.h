/* dnsfilter.h: the DNS filter that enforces a sandbox's outbound domain allowlist. */
#if !defined(PSB_DNSFILTER_H)
#define PSB_DNSFILTER_H

#include <signal.h>    /* sigset_t */
#include <stdbool.h>   /* bool */
#include <stdint.h>    /* uint64_t */
#include <sys/types.h> /* pid_t */

struct net_options;
struct host_watch;

struct dns_options {
  const char *upstream;      /* the host's resolver (an IPv4 or IPv6 address) */
  uint64_t port;             /* its port */
  const char *domains;       /* allowed names, space-separated ("*.x.org" for its subdomains); NULL: every name */
  uint64_t qps;              /* queries answered per second (more are dropped) */
  uint64_t addresses;        /* addresses the filter allows at once (the nft sets' size) */
  uint64_t min_ttl, max_ttl; /* seconds an answer's address stays allowed: its TTL, within these */
  bool link;                 /* answer on a link of the filter's own (DNS_FILTER_LINK*), not on loopback */
};

/* The sandbox's resolver address (its resolv.conf names it while a domain allowlist is in force). */
#define DNS_FILTER_ADDRESS "127.0.0.53"

/* For a runner with a TCP/IP stack of its own (gVisor's netstack, which the namespace's loopback never
 * sees), the filter's link instead: a veth pair, DNS_FILTER_LINK in the sandbox's namespace with
 * DNS_FILTER_LINK_SANDBOX (which the runner adopts as one of its links) and its peer, of the same name,
 * in a network namespace of the filter's own with DNS_FILTER_LINK_ADDRESS, the resolver's, and no route
 * but that link's.  netplan.py's egress rules pass only DNS to it. */
#define DNS_FILTER_LINK "dns0"
#define DNS_FILTER_LINK_SANDBOX "10.0.3.1"
#define DNS_FILTER_LINK_ADDRESS "10.0.3.2"
#define DNS_FILTER_LINK_MASK "255.255.255.252"

/* Forks the filter as the sandbox identity: it binds DNS_FILTER_ADDRESS:53 in
 * the sandbox's network namespace (with dns.link, DNS_FILTER_LINK_ADDRESS:53 in
 * its own, the link made first) and DIR/dns.sock (its control socket) on
 * the host, then serves until `exit_r` reaches end of file; with `hosts`
 * (sockets in the host's network namespace, hostaddr.h; NULL: none), it keeps
 * the egress filter's host4 and host6 sets equal to the host's addresses.
 * Returns its pid at once, *ready_r the pipe on which dns_filter_ready waits
 * until it listens (so that the caller starts the other helpers meanwhile), or
 * -1 after saying why. */
pid_t dns_filter_start(const struct net_options *opt, int userns, int netns, int exit_r, const struct host_watch *hosts,
                       const sigset_t *mask, int (*enter_identity)(void), int *ready_r);

/* Waits until the filter started on `ready_r` listens (and closes it): 0, or -1
 * after saying it did not start. */
int dns_filter_ready(int ready_r);

#endif
