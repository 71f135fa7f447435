/* hostaddr.c: the host's own addresses, read and watched through rtnetlink in the host's network namespace.
 *
 * Under the default network slirp4netns connects from the host's namespace, where a service bound to the
 * wildcard address answers on each of the host's addresses: the egress filter refuses them (its sets host4
 * and host6).  The supervisor fills the sets as it loads the filter; the DNS filter (dnsfilter.c), which
 * lives as long as the sandbox, keeps them current: it holds the sockets made here, in the host's namespace,
 * and reloads the sets on each change of the host's addresses or local routes.
 *
 * An address is the host's when the kernel delivers packets to it locally: its interface addresses
 * (RTM_GETADDR) and the local table's local routes (RTM_GETROUTE, RTN_LOCAL: the route each address gets,
 * and AnyIP prefixes, `ip route add local P dev lo`).  Both are read, as the address is notified before
 * its route exists.  Loopback's and link-local addresses are left out: the sandbox's own loopback is not
 * the host's, and link-local ones are refused whoever has them. */
#define _GNU_SOURCE 1
#include "hostaddr.h"

#include <arpa/inet.h>       /* inet_ntop */
#include <errno.h>           /* errno */
#include <linux/netlink.h>   /* sockaddr_nl, NETLINK_*, NLMSG_* */
#include <linux/rtnetlink.h> /* RTM_*, RTMGRP_*, rtmsg, ifaddrmsg */
#include <netinet/in.h>      /* AF_INET*, INET6_ADDRSTRLEN */
#include <poll.h>            /* poll */
#include <stdint.h>          /* uint8_t, uint32_t */
#include <stdio.h>           /* snprintf */
#include <stdlib.h>          /* calloc, free, qsort */
#include <string.h>          /* memcpy, memcmp */
#include <sys/socket.h>      /* socket, bind, send, recv, setsockopt */
#include <unistd.h>          /* close */

#include "util.h"

#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12 /* Linux 4.20: dumps filtered by the kernel; older ones are filtered here */
#endif

enum {
  DUMP_MS = 1000, /* one dump's deadline */
  DRAIN_MAX = 64, /* reads of notifications per call: a flood of route changes cannot hold the caller */
  ELEMENT_MAX = INET6_ADDRSTRLEN + 6, /* "ADDRESS/LEN, " */
};

struct prefix {
  uint8_t family, len, addr[16]; /* addr: the network, its host bits zero */
};

struct found {
  struct prefix *p;
  size_t n, cap; /* cap: twice the bound, room to compact in */
  bool over;
};

static union {
  struct nlmsghdr align;
  char buf[32768];
} in;

const char *host_table(bool own_stack)
{
  return own_stack ? "netdev pysandbox" : "inet pysandbox";
}

static size_t addr_size(int family)
{
  return family == AF_INET ? 4 : 16;
}

static int by_network(const void *a, const void *b)
{
  const struct prefix *p = a, *q = b;
  int c = p->family != q->family ? (int)p->family - (int)q->family : memcmp(p->addr, q->addr, sizeof p->addr);
  return c != 0 ? c : (int)p->len - (int)q->len;
}

/* Whether `outer` holds `p` (p's host bits are zero). */
static bool within(const struct prefix *p, const struct prefix *outer)
{
  if (p->family != outer->family || p->len < outer->len)
    return false;
  size_t whole = outer->len / 8;
  uint8_t mask = (uint8_t)(0xff << (8 - outer->len % 8));
  return memcmp(p->addr, outer->addr, whole) == 0 &&
      (outer->len % 8 == 0 || (p->addr[whole] & mask) == outer->addr[whole]);
}

/* Sorts the prefixes and drops each one inside the one kept before it (a duplicate too: an address on
 * two links, an address and its local route): what the sets get, each counted once. */
static void compact(struct found *f)
{
  qsort(f->p, f->n, sizeof *f->p, by_network);
  size_t kept = 0;
  for (size_t i = 0; i < f->n; i++)
    if (kept == 0 || !within(&f->p[i], &f->p[kept - 1]))
      f->p[kept++] = f->p[i];
  f->n = kept;
}

static void add(struct found *f, int family, const uint8_t *addr, unsigned len)
{
  if ((family != AF_INET && family != AF_INET6) || len > 8 * addr_size(family))
    return;
  struct prefix p = {.family = (uint8_t)family, .len = (uint8_t)len};
  memcpy(p.addr, addr, addr_size(family));
  for (size_t i = len / 8; i < addr_size(family); i++)
    p.addr[i] &= i == len / 8 ? (uint8_t)(0xff << (8 - len % 8)) : 0;
  static const uint8_t loopback6[16] = {[15] = 1};
  bool loopback = family == AF_INET ? len >= 8 && p.addr[0] == 127 : len == 128 && memcmp(p.addr, loopback6, 16) == 0;
  bool link_local = family == AF_INET ? len >= 16 && p.addr[0] == 169 && p.addr[1] == 254
                                      : len >= 10 && p.addr[0] == 0xfe && (p.addr[1] & 0xc0) == 0x80;
  if (loopback || link_local)
    return;
  if (f->n == f->cap)
    compact(f);
  if (f->n == f->cap)
    f->over = true; /* past the bound whatever follows */
  else
    f->p[f->n++] = p;
}

static void on_route(const struct nlmsghdr *h, struct found *f)
{
  const struct rtmsg *r = NLMSG_DATA(h);
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof *r) || r->rtm_type != RTN_LOCAL)
    return;
  uint8_t dst[16] = {0}; /* none: a default route, 0/0 */
  int len = (int)RTM_PAYLOAD(h);
  for (const struct rtattr *a = RTM_RTA(r); RTA_OK(a, len); a = RTA_NEXT(a, len))
    if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) == addr_size(r->rtm_family))
      memcpy(dst, RTA_DATA(a), RTA_PAYLOAD(a));
  add(f, r->rtm_family, dst, r->rtm_dst_len);
}

static void on_address(const struct nlmsghdr *h, struct found *f)
{
  const struct ifaddrmsg *m = NLMSG_DATA(h);
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof *m))
    return;
  const uint8_t *local = NULL, *address = NULL; /* IFA_ADDRESS is the peer's on a point-to-point link */
  int len = (int)IFA_PAYLOAD(h);
  for (const struct rtattr *a = IFA_RTA(m); RTA_OK(a, len); a = RTA_NEXT(a, len))
    if (RTA_PAYLOAD(a) == addr_size(m->ifa_family) && (a->rta_type == IFA_LOCAL || a->rta_type == IFA_ADDRESS))
      *(a->rta_type == IFA_LOCAL ? &local : &address) = RTA_DATA(a);
  if (local != NULL || address != NULL)
    add(f, m->ifa_family, local != NULL ? local : address, (unsigned)(8 * addr_size(m->ifa_family)));
}

/* One dump (RTM_GETROUTE or RTM_GETADDR, every family) into `f`.  0, or -1 with errno. */
static int dump(int query, uint16_t type, struct found *f)
{
  static uint32_t seq;
  struct {
    struct nlmsghdr h;
    union {
      struct rtmsg r;
      struct ifaddrmsg a;
    } m;
  } req = {.h = {.nlmsg_type = type, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = ++seq}};
  if (type == RTM_GETROUTE) { /* the local table's local routes (a kernel without strict checks: every route) */
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.m.r);
    req.m.r = (struct rtmsg){.rtm_family = AF_UNSPEC, .rtm_table = RT_TABLE_LOCAL, .rtm_type = RTN_LOCAL};
  } else {
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.m.a);
  }
  if (send(query, &req, req.h.nlmsg_len, 0) < 0)
    return -1;
  int64_t deadline = now_ms() + DUMP_MS;
  for (;;) {
    ssize_t n = recv(query, in.buf, sizeof in.buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd p = {.fd = query, .events = POLLIN};
      int64_t left = deadline - now_ms();
      if (left <= 0) {
        errno = ETIMEDOUT;
        return -1;
      }
      if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
        return -1;
      continue;
    }
    if (n < 0)
      return -1;
    int len = (int)n;
    for (const struct nlmsghdr *h = &in.align; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq)
        continue; /* the rest of a dump abandoned at its deadline */
      if (h->nlmsg_type == NLMSG_DONE)
        return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        errno = h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) && e->error < 0 ? -e->error : EPROTO;
        return -1;
      }
      if (h->nlmsg_type == RTM_NEWROUTE)
        on_route(h, f);
      else if (h->nlmsg_type == RTM_NEWADDR)
        on_address(h, f);
    }
  }
}

size_t host_elements_size(size_t max)
{
  return max * ELEMENT_MAX + 256;
}

/* The commands of the compacted prefixes (interval sets refuse overlapping elements). */
static size_t commands(const struct found *f, const char *table, char *buf, size_t size)
{
  size_t len = 0;
  const struct prefix *kept = NULL;
  for (size_t i = 0; i < f->n && len < size; i++) {
    const struct prefix *p = &f->p[i];
    char text[INET6_ADDRSTRLEN];
    inet_ntop(p->family, p->addr, text, sizeof text);
    bool first = kept == NULL || kept->family != p->family;
    int n = snprintf(buf + len, size - len, "%s%s%s%s%s/%u", first && kept != NULL ? " }; " : "",
                     first ? "add element " : ", ", first ? table : "",
                     !first                     ? ""
                         : p->family == AF_INET ? " host4 { "
                                                : " host6 { ",
                     text, p->len);
    len = n < 0 ? size : len + (size_t)n;
    kept = p;
  }
  if (kept != NULL && len < size) {
    int n = snprintf(buf + len, size - len, " }; ");
    len = n < 0 ? size : len + (size_t)n;
  }
  return len;
}

int host_elements(int query, const char *table, size_t max, char *buf, size_t size)
{
  struct found f = {.p = calloc(2 * max, sizeof *f.p), .cap = 2 * max};
  if (f.p == NULL || dump(query, RTM_GETADDR, &f) < 0 || dump(query, RTM_GETROUTE, &f) < 0) {
    pwarnf("reading the host's addresses");
    free(f.p);
    return -1;
  }
  compact(&f);
  size_t len = f.over || f.n > max ? size : commands(&f, table, buf, size);
  free(f.p);
  if (len >= size) { /* fails closed: no sandbox starts, a running one keeps the addresses it refuses */
    warnf("the host has over %zu addresses (and local prefixes): raise PYSANDBOX_HOST_ADDRESSES_MAX", max);
    return -1;
  }
  return (int)len;
}

int host_watch_open(struct host_watch *w)
{
  struct sockaddr_nl groups = {.nl_family = AF_NETLINK,
                               .nl_groups =
                                   RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE};
  w->events = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  w->query = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (w->events < 0 || w->query < 0 || bind(w->events, (struct sockaddr *)&groups, sizeof groups) < 0) {
    pwarnf("watching the host's addresses");
    host_watch_close(w);
    return -1;
  }
  setsockopt(w->query, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &(int){1}, sizeof(int)); /* else: filtered here */
  return 0;
}

void host_watch_close(struct host_watch *w)
{
  if (w->events >= 0)
    close(w->events);
  if (w->query >= 0)
    close(w->query);
  w->events = w->query = -1;
}

static bool local_change(const struct nlmsghdr *h)
{
  if (h->nlmsg_type == RTM_NEWADDR || h->nlmsg_type == RTM_DELADDR)
    return true;
  const struct rtmsg *r = NLMSG_DATA(h);
  return (h->nlmsg_type == RTM_NEWROUTE || h->nlmsg_type == RTM_DELROUTE) && h->nlmsg_len >= NLMSG_LENGTH(sizeof *r) &&
      r->rtm_type == RTN_LOCAL;
}

bool host_watch_changed(int events)
{
  bool changed = false;
  for (int i = 0; i < DRAIN_MAX; i++) {
    ssize_t n = recv(events, in.buf, sizeof in.buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return changed || errno != EAGAIN; /* ENOBUFS: the queue overflowed, a change may be lost */
    int len = (int)n;
    for (const struct nlmsghdr *h = &in.align; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
      changed = changed || local_change(h);
  }
  return true; /* more than we read: assume the worst, the next call reads on */
}
