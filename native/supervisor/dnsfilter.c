/* dnsfilter.c: a sandbox's resolver while its outbound policy names domains.
 *
 * A child of the supervisor (forked, never exec'd), as the sandbox identity,
 * on the host side: it holds a UDP socket bound in the sandbox's network
 * namespace (DNS_FILTER_ADDRESS:53, which the sandbox's resolv.conf names),
 * a socket to the host's resolver made in the host's, and a control socket
 * in the sandbox's net directory.  A query for an allowed name is rebuilt
 * (header and question only) and forwarded; every A and AAAA record of the
 * answer goes into the egress filter's sets (allow4, allow6) with its TTL,
 * by nft in the sandbox's namespaces, before the answer is passed on.  Any
 * other name gets NXDOMAIN without leaving the filter.
 *
 * Everything the sandbox sends is hostile: queries are parsed strictly
 * (one question, no compression, hostname bytes only, at most 512 bytes),
 * rate-limited, and only 64 wait for the upstream at once; answers are
 * parsed within their length.  The memory is fixed at start.
 *
 * The control socket (in the net directory, the identity's and mode 0700,
 * which no sandbox mounts) replaces the policy: one message, the
 * allowed names ("*": every name) on its first line, then the egress ruleset,
 * loaded with the still-allowed addresses and the host's in one nft transaction.
 *
 * It also keeps the filter's host4 and host6 sets equal to the host's own
 * addresses (hostaddr.h): on each change of the host's (notified on a netlink
 * socket made in the host's namespace), at most every HOST_SPACING_MS (a burst
 * is one update), the sets' elements are replaced in one transaction.  Until
 * an update succeeds, the sets keep what they held; a failure is logged and
 * retried every HOST_RETRY_MS.
 *
 * With dns.link (a runner with a stack of its own, gVisor's, whose packets the
 * namespace's loopback never sees) the filter answers on a link of its own
 * instead (filter_link), from a network namespace of its own made in the
 * sandbox's user namespace: nothing there but that link, no route beyond it.
 * Its nft runs go to the sandbox's namespace, its sets to the netdev table. */
#define _GNU_SOURCE 1
#include "dnsfilter.h"

#include <arpa/inet.h>       /* inet_pton, inet_ntop, htons */
#include <errno.h>           /* errno */
#include <fcntl.h>           /* open */
#include <linux/if_link.h>   /* IFLA_* */
#include <linux/rtnetlink.h> /* RTM_NEWLINK, struct ifinfomsg, NLMSG_*, RTA_* */
#include <linux/veth.h>      /* VETH_INFO_PEER */
#include <net/if.h>          /* struct ifreq, IFF_UP */
#include <netinet/in.h>      /* sockaddr_in, IPPROTO_IP */
#include <poll.h>            /* poll */
#include <sched.h>           /* setns, CLONE_NEW* */
#include <stdbool.h>         /* bool */
#include <stdio.h>           /* snprintf */
#include <stdlib.h>          /* calloc, malloc, free */
#include <string.h>          /* memcpy, memcmp, strlen */
#include <sys/prctl.h>       /* prctl, PR_SET_PDEATHSIG */
#include <sys/ioctl.h>       /* ioctl, SIOCSIF* */
#include <sys/random.h>      /* getrandom */
#include <sys/socket.h>      /* socket, bind, sendto, recvfrom */
#include <sys/un.h>          /* sockaddr_un */
#include <sys/wait.h>        /* waitpid */
#include <unistd.h>          /* fork, execve, close, close_range, pipe2 */

#include "fdutil.h"
#include "hostaddr.h"
#include "netns.h"
#include "util.h"

enum {
  QUERY_MAX = 512,    /* a query over UDP without EDNS, which is all the filter serves */
  ANSWER_MAX = 4096,  /* upstream answers: queries go out without EDNS, so 512 in practice */
  NAME_MAX_LEN = 253, /* a name, dotted, without its final dot */
  PENDING_MAX = 64,   /* queries waiting for the upstream */
  PENDING_MS = 3000,  /* how long one may wait */
  ADDRS_PER_ANSWER = 32,
  CONTROL_MAX = 262144, /* one control message */
  HOST_SPACING_MS = 50, /* between two updates of the host's addresses */
  HOST_RETRY_MS = 1000, /* after a failed one */
};

struct pending {
  bool used;
  uint16_t ours, theirs; /* the id sent upstream, the client's */
  struct sockaddr_in client;
  uint8_t question[NAME_MAX_LEN + 2 + 4]; /* name in wire form, type, class */
  size_t qlen;
  char name[NAME_MAX_LEN + 1];
  int64_t deadline;
};

struct entry {
  int family; /* 0: free */
  uint8_t addr[16];
  int64_t expires;             /* ms */
  char name[NAME_MAX_LEN + 1]; /* the name it was an answer for */
};

static struct {
  const struct dns_options *opt;
  const char *nft;
  const char *table; /* the egress filter's, which holds the sets */
  int sock, up, ctl, exit_r;
  int userns, netns;                /* the sandbox's, which each nft run joins (the filter itself never does) */
  struct sockaddr_storage upstream; /* zeroed but for family, address and port: compared whole */
  socklen_t upstream_len;
  char *domains; /* NULL: every name */
  struct pending pending[PENDING_MAX];
  struct entry *entries;
  double tokens;
  int64_t refilled;
  struct {
    struct host_watch watch; /* events -1: the host's addresses are not refused */
    uint64_t max;
    char *text, *loaded; /* the next update's commands; the elements the sets hold */
    size_t size;
    bool armed, dirty, failing;
    int64_t next; /* no update before */
  } host;
} f;

static bool host_byte(uint8_t c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static uint8_t lower(uint8_t c)
{
  return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static uint16_t get16(const uint8_t *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}

/* The question of a query: its dotted lower-case name (empty when a label
 * holds a byte no hostname has: such a name matches nothing) and where
 * type and class end.  -1: malformed. */
static int parse_question(const uint8_t *m, size_t n, char name[NAME_MAX_LEN + 1], size_t *end)
{
  size_t i = 12, out = 0;
  bool hostname = true;
  for (;;) {
    if (i >= n)
      return -1;
    uint8_t len = m[i++];
    if (len == 0)
      break;
    if (len > 63 || i + len > n || out + (out > 0) + len > NAME_MAX_LEN) /* > 63: compression, reserved */
      return -1;
    if (out > 0)
      name[out++] = '.';
    for (size_t k = 0; k < len; k++) {
      hostname = hostname && host_byte(m[i + k]);
      name[out++] = (char)lower(m[i + k]);
    }
    i += len;
  }
  if (i + 4 > n)
    return -1;
  name[hostname ? out : 0] = '\0';
  *end = i + 4;
  return 0;
}

/* Whether the policy allows `name`: one of the list exactly, or below a
 * "*.suffix" entry (not the suffix itself).  Labels hold no dots (checked
 * by parse_question), so a suffix match is a match of whole labels. */
static bool allowed(const char *name)
{
  if (f.domains == NULL)
    return true;
  size_t n = strlen(name);
  if (n == 0)
    return false;
  for (const char *p = f.domains; *p != '\0';) {
    while (*p == ' ')
      p++;
    size_t len = strcspn(p, " ");
    if (len > 2 && p[0] == '*' && p[1] == '.') {
      if (n > len - 1 && memcmp(name + n - (len - 1), p + 1, len - 1) == 0)
        return true;
    } else if (len == n && memcmp(name, p, n) == 0) {
      return true;
    }
    p += len;
  }
  return false;
}

/* An answer without records: `question` is the name in wire form, type and class. */
static void reply(uint16_t id, const uint8_t *question, size_t qlen, uint8_t rcode, const struct sockaddr_in *to)
{
  uint8_t r[12 + NAME_MAX_LEN + 2 + 4] = {(uint8_t)(id >> 8), (uint8_t)id, 0x81, (uint8_t)(0x80 | rcode), 0, 1};
  memcpy(r + 12, question, qlen);
  sendto(f.sock, r, 12 + qlen, MSG_DONTWAIT, (const struct sockaddr *)to, sizeof *to);
}

static bool take_token(void)
{
  int64_t now = now_ms();
  f.tokens += (double)(now - f.refilled) * (double)f.opt->qps / 1000.0;
  if (f.tokens > (double)f.opt->qps)
    f.tokens = (double)f.opt->qps;
  f.refilled = now;
  if (f.tokens < 1.0)
    return false;
  f.tokens -= 1.0;
  return true;
}

static void on_query(void)
{
  uint8_t m[QUERY_MAX];
  struct sockaddr_in from;
  socklen_t fl = sizeof from;
  ssize_t got = recvfrom(f.sock, m, sizeof m, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from, &fl);
  if (got < 12 || (size_t)got > sizeof m || fl != sizeof from || from.sin_family != AF_INET || !take_token())
    return; /* truncated, not DNS, or over the rate: dropped */
  size_t n = (size_t)got, end;
  char name[NAME_MAX_LEN + 1];
  if ((m[2] & 0xf8) != 0 || get16(m + 4) != 1 || get16(m + 6) != 0 || get16(m + 8) != 0 || get16(m + 10) > 1 ||
      parse_question(m, n, name, &end) < 0)
    return; /* not a standard query with one question */
  if (get16(m + end - 2) != 1 || !allowed(name)) {
    reply(get16(m), m + 12, end - 12, 3, &from); /* NXDOMAIN: the name is not there for this sandbox */
    return;
  }
  struct pending *p = NULL;
  for (size_t i = 0; i < PENDING_MAX && p == NULL; i++)
    if (!f.pending[i].used)
      p = &f.pending[i];
  uint16_t id;
  if (p == NULL || getrandom(&id, sizeof id, 0) != sizeof id) {
    reply(get16(m), m + 12, end - 12, 2, &from); /* SERVFAIL: too many in flight */
    return;
  }
  *p = (struct pending){.used = true,
                        .ours = id,
                        .theirs = get16(m),
                        .client = from,
                        .qlen = end - 12,
                        .deadline = now_ms() + PENDING_MS};
  memcpy(p->question, m + 12, p->qlen);
  memcpy(p->name, name, sizeof name);
  uint8_t q[12 + sizeof p->question] = {(uint8_t)(id >> 8), (uint8_t)id, 0x01, 0x00, 0, 1}; /* recursion desired */
  memcpy(q + 12, p->question, p->qlen);
  if (sendto(f.up, q, end, MSG_DONTWAIT, (struct sockaddr *)&f.upstream, f.upstream_len) != (ssize_t)end) {
    p->used = false;
    reply(p->theirs, p->question, p->qlen, 2, &from);
  }
}

/* In an nft child: the sandbox's user and network namespaces.  Forked outside
 * them, the child counts against the caller's RLIMIT_NPROC, not the one the
 * sandbox's user namespace recorded (the fallback pids limit, limits.py), which
 * sandbox code may hold whole (red team). */
static int enter_sandbox_netns(void)
{
  return setns(f.userns, CLONE_NEWUSER) < 0 ? -1 : setns(f.netns, CLONE_NEWNET);
}

/* Runs nft with `text` on its stdin, in the sandbox's namespaces:
 * for a policy, whose ruleset spans lines. */
static int run_nft(const char *text, size_t len)
{
  int in[2];
  if (pipe2(in, O_CLOEXEC) < 0)
    return -1;
  pid_t parent = getpid(), pid = fork();
  if (pid == 0) {
    if (dup2(in[0], 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent ||
        enter_sandbox_netns() < 0)
      _exit(127);
    char *argv[] = {(char *)f.nft, "-f", "/dev/stdin", NULL};
    execve(f.nft, argv, host_env);
    _exit(127);
  }
  close(in[0]);
  int rc = pid < 0 ? -1 : write_all(in[1], text, len);
  close(in[1]);
  int st = 0;
  while (pid > 0 && waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  return pid > 0 && rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Appends "add, delete, add with a timeout" of one element, on one line:
 * the first add makes the delete valid, the last sets a fresh timeout
 * (adding an element that exists keeps its old one).  Returns the new
 * length; `size` once the buffer is full. */
static size_t element_command(char *buf, size_t size, size_t len, const struct entry *e, int64_t seconds)
{
  char text[INET6_ADDRSTRLEN];
  inet_ntop(e->family, e->addr, text, sizeof text);
  const char *set = e->family == AF_INET ? "allow4" : "allow6";
  int n = snprintf(buf + len, size - len,
                   "add element %s %s { %s }; delete element %s %s { %s }; add element %s %s { %s timeout %llds }; ",
                   f.table, set, text, f.table, set, text, f.table, set, text, (long long)seconds);
  return n < 0 || (size_t)n >= size - len ? size : len + (size_t)n;
}

/* `nft -e -i`, kept running in the sandbox's namespaces for the answers' addresses: an
 * nft run costs 10-15 ms (its start and its cache), a line to it well under
 * one.  Each line is one transaction; with -e it says "# new generation" once
 * the transaction is in, "Error" otherwise. */
static struct {
  pid_t pid;
  int in, out;
} nft = {.pid = -1};

static void nft_stop(void)
{
  if (nft.pid > 0) {
    kill(nft.pid, SIGKILL);
    while (waitpid(nft.pid, NULL, 0) < 0 && errno == EINTR)
      ;
    close(nft.in);
    close(nft.out);
  }
  nft.pid = -1;
}

static int nft_start(void)
{
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) < 0)
    return -1;
  if (pipe2(out, O_CLOEXEC) < 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) < 0) { /* ours only: nft writes blocking */
    close(in[0]);
    close(in[1]);
    return -1;
  }
  pid_t parent = getpid(), pid = fork();
  if (pid == 0) {
    if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0 ||
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent || enter_sandbox_netns() < 0)
      _exit(127);
    char *argv[] = {(char *)f.nft, "-e", "-i", NULL};
    execve(f.nft, argv, host_env);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  nft = (typeof(nft)){.pid = pid, .in = in[1], .out = out[0]};
  if (pid < 0) {
    nft_stop();
    return -1;
  }
  return 0;
}

/* Runs one line of commands (it ends with '\n') as one transaction. */
static int nft_line(const char *line, size_t len)
{
  static char out[4096];
  if (nft.pid < 0 && nft_start() < 0)
    return -1;
  while (read(nft.out, out, sizeof out) > 0)
    ; /* what a failed line printed after its "Error" */
  if (write_all(nft.in, line, len) < 0) {
    nft_stop();
    return -1;
  }
  size_t have = 0;
  int64_t deadline = now_ms() + 5000;
  for (;;) {
    struct pollfd p = {.fd = nft.out, .events = POLLIN};
    int64_t left = deadline - now_ms();
    if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR))
      break;
    ssize_t n = read(nft.out, out + have, sizeof out - 1 - have);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      break;
    have += n > 0 ? (size_t)n : 0;
    out[have] = '\0';
    if (strstr(out, "# new generation") != NULL)
      return 0;
    if (strstr(out, "Error") != NULL)
      return -1;
    if (have > sizeof out / 2) { /* the echo of many elements: keep the tail, where a verdict may start */
      memmove(out, out + have - 64, 64);
      have = 64;
    }
  }
  nft_stop(); /* silent, dead or stuck: the next line gets a new one */
  return -1;
}

static struct entry *entry_for(int family, const uint8_t *addr, int64_t now)
{
  struct entry *spare = NULL;
  size_t size = family == AF_INET ? 4 : 16;
  for (size_t i = 0; i < f.opt->addresses; i++) {
    struct entry *e = &f.entries[i];
    if (e->family == family && memcmp(e->addr, addr, size) == 0)
      return e;
    if (spare == NULL && (e->family == 0 || e->expires <= now))
      spare = e;
  }
  return spare;
}

/* Allows the addresses of an answer for `name`, each for its TTL (within
 * the bounds).  -1: the address table is full or nft failed. */
static int allow_answer(const uint8_t *m, size_t n, size_t off, const char *name)
{
  static char cmd[ADDRS_PER_ANSWER * 3 * 128];
  struct entry *changed[ADDRS_PER_ANSWER];
  size_t nchanged = 0, len = 0;
  bool full = false;
  int64_t now = now_ms();
  for (unsigned an = get16(m + 6); an > 0; an--) {
    while (off < n && m[off] != 0 && m[off] < 0xc0) /* the owner name: labels, then an end or a pointer */
      off += 1u + m[off];
    off += off < n && m[off] >= 0xc0 ? 2 : 1;
    if (off + 10 > n || off + 10 + get16(m + off + 8) > n)
      return -1;
    uint16_t type = get16(m + off), class = get16(m + off + 2), rdlen = get16(m + off + 8);
    int64_t ttl = (int64_t)((uint32_t)get16(m + off + 4) << 16 | get16(m + off + 6));
    const uint8_t *rdata = m + off + 10;
    off += 10u + rdlen;
    int family = class != 1 ? 0 : type == 1 && rdlen == 4 ? AF_INET : type == 28 && rdlen == 16 ? AF_INET6 : 0;
    if (family == 0)
      continue;
    ttl = ttl < (int64_t)f.opt->min_ttl ? (int64_t)f.opt->min_ttl : ttl;
    ttl = ttl > (int64_t)f.opt->max_ttl ? (int64_t)f.opt->max_ttl : ttl;
    if (nchanged == ADDRS_PER_ANSWER)
      break; /* the client gets every record; this many new addresses per answer are allowed */
    struct entry *e = entry_for(family, rdata, now);
    if (e == NULL) {
      static bool warned; /* once: the sandbox decides how often this happens, the log is the host's */
      if (!warned)
        warnf("the sandbox's DNS filter holds its maximum of %llu addresses", (unsigned long long)f.opt->addresses);
      warned = true;
      full = true;
      break;
    }
    if (e->family == family && e->expires - now >= ttl * 500 && strcmp(e->name, name) == 0)
      continue; /* allowed for at least half its TTL still: no nft run */
    *e = (struct entry){.family = family, .expires = now + ttl * 1000};
    memcpy(e->addr, rdata, rdlen);
    snprintf(e->name, sizeof e->name, "%s", name);
    changed[nchanged++] = e;
    len = element_command(cmd, sizeof cmd, len, e, ttl);
  }
  if (len < sizeof cmd)
    cmd[len++] = '\n';
  if (!full && (len == 1 || (len < sizeof cmd && nft_line(cmd, len) == 0)))
    return 0;
  for (size_t i = 0; i < nchanged; i++)
    changed[i]->family = 0; /* not in the set after all */
  return -1;
}

static void on_answer(void)
{
  static uint8_t m[ANSWER_MAX];
  struct sockaddr_storage from;
  socklen_t fl = sizeof from;
  ssize_t got = recvfrom(f.up, m, sizeof m, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from, &fl);
  if (fl != f.upstream_len || memcmp(&from, &f.upstream, fl) != 0)
    return; /* not from the upstream */
  if (got < 12 || (size_t)got > sizeof m || (m[2] & 0x80) == 0 || get16(m + 4) != 1)
    return;
  size_t n = (size_t)got;
  struct pending *p = NULL;
  for (size_t i = 0; i < PENDING_MAX && p == NULL; i++)
    if (f.pending[i].used && f.pending[i].ours == get16(m))
      p = &f.pending[i];
  if (p == NULL || 12 + p->qlen > n)
    return;
  for (size_t i = 0; i < p->qlen; i++)
    if (lower(m[12 + i]) != lower(p->question[i]))
      return; /* not the answer to our question */
  p->used = false;
  if (allow_answer(m, n, 12 + p->qlen, p->name) < 0) {
    reply(p->theirs, p->question, p->qlen, 2, &p->client); /* SERVFAIL: the address could not be allowed */
    return;
  }
  m[0] = (uint8_t)(p->theirs >> 8);
  m[1] = (uint8_t)p->theirs;
  sendto(f.sock, m, n, MSG_DONTWAIT, (const struct sockaddr *)&p->client, sizeof p->client);
}

/* The names of a policy line: "*" is every name. */
static int set_domains(const char *line, size_t len)
{
  char *copy = NULL;
  if (!(len == 1 && line[0] == '*')) {
    copy = malloc(len + 1);
    if (copy == NULL)
      return -1;
    memcpy(copy, line, len);
    copy[len] = '\0';
  }
  free(f.domains);
  f.domains = copy;
  return 0;
}

/* Whether an allowed address stays allowed under the policy just set. */
static bool retained(const struct entry *e, int64_t now)
{
  return e->family != 0 && e->expires > now + 1000 && allowed(e->name);
}

/* Loads a policy message (names, newline, ruleset) with the addresses it
 * keeps, in one nft transaction.  On failure the old policy stays, in the
 * kernel too. */
static int load_policy(const char *msg, size_t n)
{
  const char *nl = memchr(msg, '\n', n);
  if (nl == NULL)
    return -1;
  size_t size = n + f.opt->addresses * 320 + f.host.size, len = n - (size_t)(nl + 1 - msg);
  char *text = malloc(size), *old = f.domains;
  f.domains = NULL;
  if (text == NULL || set_domains(msg, (size_t)(nl - msg)) < 0) {
    free(text);
    f.domains = old;
    return -1;
  }
  memcpy(text, nl + 1, len);
  int64_t now = now_ms();
  for (size_t i = 0; i < f.opt->addresses; i++)
    if (retained(&f.entries[i], now))
      len = element_command(text, size, len, &f.entries[i], (f.entries[i].expires - now) / 1000);
  if (f.host.loaded != NULL) /* what the sets held: a change since is pending on the watch */
    len += (size_t)snprintf(text + len, size - len, "\n%s", f.host.loaded);
  int rc = len < size ? run_nft(text, len) : -1;
  free(text);
  nft_stop(); /* its cache knew the old table */
  if (rc < 0) {
    free(f.domains);
    f.domains = old;
    return -1;
  }
  free(old);
  for (size_t i = 0; i < f.opt->addresses; i++)
    if (!retained(&f.entries[i], now))
      f.entries[i].family = 0;
  return 0;
}

static void on_control(void)
{
  static char msg[CONTROL_MAX];
  int c = accept4(f.ctl, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0)
    return;
  struct pollfd pc = {.fd = c, .events = POLLIN};
  ssize_t n = poll(&pc, 1, 5000) == 1 ? recv(c, msg, sizeof msg, MSG_DONTWAIT | MSG_TRUNC) : -1;
  const char *verdict = n > 0 && (size_t)n <= sizeof msg && load_policy(msg, (size_t)n) == 0 ? "ok" : "error";
  send(c, verdict, strlen(verdict), MSG_NOSIGNAL | MSG_DONTWAIT);
  close(c);
}

/* The supervisor's word that the ruleset holding the host sets is in (end of file: it failed, and the
 * sandbox with it): updates may start. */
static void host_arm(struct pollfd *p)
{
  char go = 0;
  if (read(p->fd, &go, 1) < 0 && errno == EINTR)
    return;
  close(p->fd);
  p->fd = -1;
  f.host.armed = go == '1';
}

/* Replaces the elements of the host sets with the host's addresses now, in one transaction, when they differ:
 * flushed, as an interval set refuses an element overlapping one a command of the same transaction deletes. */
static void host_update(void)
{
  int64_t now = now_ms();
  if (!f.host.dirty || now < f.host.next || !f.host.armed)
    return; /* nothing new, too soon, or the sets may not be there yet */
  char *t = f.host.text;
  size_t flush = (size_t)snprintf(t, f.host.size, "flush set %s host4; flush set %s host6; ", f.table, f.table);
  t[flush] = '\0';
  int n = host_elements(f.host.watch.query, f.table, f.host.max, t + flush, f.host.size - flush - 1);
  bool done = n >= 0 && strcmp(t + flush, f.host.loaded) == 0;
  if (n >= 0 && !done) /* run_nft, not nft_line: nft -e prints no new generation for a flush */
    done = run_nft(t, flush + (size_t)n) == 0;
  if (done) {
    memcpy(f.host.loaded, t + flush, (size_t)n + 1);
    if (f.host.failing)
      warnf("the sandbox refuses the host's current addresses again");
    f.host.dirty = f.host.failing = false;
    f.host.next = now + HOST_SPACING_MS;
    return;
  }
  if (!f.host.failing) /* once per failure: retried until it passes */
    warnf("updating the host's addresses the sandbox refuses failed: it may reach those the host gained since; "
          "retrying every %d ms",
          HOST_RETRY_MS);
  f.host.failing = true;
  f.host.next = now + HOST_RETRY_MS;
}

static void serve(void)
{
  struct pollfd p[6] = {{.fd = f.exit_r, .events = POLLIN},
                        {.fd = f.sock, .events = POLLIN},
                        {.fd = f.up, .events = POLLIN},
                        {.fd = f.ctl, .events = POLLIN},
                        {.fd = f.host.watch.events, .events = POLLIN}, /* -1: not polled */
                        {.fd = f.host.watch.armed, .events = POLLIN}};
  for (;;) {
    int64_t wait = f.host.dirty && f.host.armed ? f.host.next - now_ms() : 1000;
    if (poll(p, 6, wait < 0 ? 0 : wait > 1000 ? 1000 : (int)wait) < 0 && errno != EINTR)
      _exit(1);
    if (p[0].revents != 0)
      _exit(0); /* the supervisor closed its end: the sandbox is over */
    if (p[1].revents != 0)
      on_query(); /* POLLERR too: the recv takes the socket's error */
    if (p[2].revents != 0)
      on_answer();
    if (p[3].revents & POLLIN)
      on_control();
    if (p[4].revents != 0 && host_watch_changed(f.host.watch.events))
      f.host.dirty = true;
    if (p[5].revents != 0)
      host_arm(&p[5]);
    host_update();
    int64_t now = now_ms();
    for (size_t i = 0; i < PENDING_MAX; i++)
      if (f.pending[i].used && f.pending[i].deadline <= now)
        f.pending[i].used = false; /* the client retries or gives up */
  }
}

/* Closes every fd above 2 but the `n` in `keep`: the filter outlives most of the supervisor's. */
static void close_others(int *keep, int n)
{
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && keep[j] < keep[j - 1]; j--) {
      int t = keep[j];
      keep[j] = keep[j - 1];
      keep[j - 1] = t;
    }
  unsigned from = 3;
  for (int i = 0; i < n; i++) {
    if ((unsigned)keep[i] > from)
      close_range(from, (unsigned)keep[i] - 1, 0);
    from = (unsigned)keep[i] + 1;
  }
  close_range(from, ~0U, 0);
}

/* Not connected: the upstream may be unreachable now (a host without a
 * route yet) and reachable later; its answers are told by their source. */
static int upstream_socket(const struct dns_options *opt)
{
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&f.upstream;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&f.upstream;
  if (inet_pton(AF_INET, opt->upstream, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)opt->port);
    f.upstream_len = sizeof *a4;
  } else if (inet_pton(AF_INET6, opt->upstream, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)opt->port);
    f.upstream_len = sizeof *a6;
  } else {
    warnf("bad DNS upstream address: %s", opt->upstream);
    return -1;
  }
  int s = socket(f.upstream.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0)
    pwarnf("DNS upstream socket");
  return s;
}

static int control_socket(void)
{
  struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "dns.sock"}; /* in DIR, our cwd */
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4) < 0) {
    pwarnf("DNS filter control socket");
    return -1;
  }
  return s;
}

static int listen_socket(const char *address)
{
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
  inet_pton(AF_INET, address, &a.sin_addr);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0 || setsockopt(s, IPPROTO_IP, IP_FREEBIND, &(int){1}, sizeof(int)) < 0 ||
      bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
    pwarnf("DNS filter socket");
    return -1;
  }
  return s;
}

/* Appends an attribute to the netlink message in `buf` (room checked by the caller's fixed sizes);
 * returns it, so that a nest's length can be set once its contents are in. */
static struct rtattr *add_attr(char *buf, size_t *len, unsigned short type, const void *data, size_t size)
{
  struct rtattr *a = (struct rtattr *)(buf + NLMSG_ALIGN(*len));
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(size);
  if (size > 0)
    memcpy(RTA_DATA(a), data, size);
  *len = NLMSG_ALIGN(*len) + RTA_ALIGN(a->rta_len);
  return a;
}

static void end_nest(const char *buf, size_t len, struct rtattr *nest)
{
  nest->rta_len = (unsigned short)(buf + len - (char *)nest);
}

/* The veth pair DNS_FILTER_LINK in our namespace, its peer of the same name in `peer_ns`
 * (RTM_NEWLINK: `ip link add NAME type veth peer name NAME netns PEER`). */
static int make_veth(int peer_ns)
{
  union {
    struct nlmsghdr h;
    char buf[512];
  } m;
  memset(&m, 0, sizeof m); /* the link's and its peer's ifinfomsg: zeroed */
  m.h.nlmsg_type = RTM_NEWLINK;
  m.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  size_t len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  add_attr(m.buf, &len, IFLA_IFNAME, DNS_FILTER_LINK, sizeof DNS_FILTER_LINK);
  struct rtattr *info = add_attr(m.buf, &len, IFLA_LINKINFO, NULL, 0);
  add_attr(m.buf, &len, IFLA_INFO_KIND, "veth", sizeof "veth");
  struct rtattr *data = add_attr(m.buf, &len, IFLA_INFO_DATA, NULL, 0);
  struct rtattr *peer = add_attr(m.buf, &len, VETH_INFO_PEER, NULL, 0);
  len += sizeof(struct ifinfomsg); /* the peer's */
  add_attr(m.buf, &len, IFLA_IFNAME, DNS_FILTER_LINK, sizeof DNS_FILTER_LINK);
  add_attr(m.buf, &len, IFLA_NET_NS_FD, &peer_ns, sizeof peer_ns);
  end_nest(m.buf, len, peer);
  end_nest(m.buf, len, data);
  end_nest(m.buf, len, info);
  m.h.nlmsg_len = (unsigned)len;
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  union {
    struct nlmsghdr h;
    char buf[1024];
  } ack;
  ssize_t n = -1;
  if (s >= 0 && sendto(s, m.buf, len, 0, (struct sockaddr *)&kernel, sizeof kernel) == (ssize_t)len)
    while ((n = recv(s, ack.buf, sizeof ack.buf, 0)) < 0 && errno == EINTR)
      ;
  if (s >= 0)
    close(s);
  if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) || ack.h.nlmsg_type != NLMSG_ERROR)
    return -1;
  int error = ((struct nlmsgerr *)NLMSG_DATA(&ack.h))->error;
  errno = -error;
  return error == 0 ? 0 : -1;
}

/* No IPv6 on DNS_FILTER_LINK in our namespace: no link-local address, so neither kernel sends on it
 * (duplicate address detection, router solicitations) before the filter's chain holds.  A kernel
 * without IPv6 has no such file, and nothing to disable. */
static int link_without_ipv6(void)
{
  int fd = open("/proc/sys/net/ipv6/conf/" DNS_FILTER_LINK "/disable_ipv6", O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : -1;
  int rc = write(fd, "1", 1) == 1 ? 0 : -1;
  close(fd);
  return rc;
}

/* DNS_FILTER_LINK in our namespace: IPv4 only, `address`/DNS_FILTER_LINK_MASK, up (which adds the
 * link's route). */
static int link_up(const char *address)
{
  if (link_without_ipv6() < 0)
    return -1;
  struct ifreq r = {.ifr_name = DNS_FILTER_LINK};
  struct sockaddr_in *a = (struct sockaddr_in *)&r.ifr_addr;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  a->sin_family = AF_INET;
  int rc = s < 0 || inet_pton(AF_INET, address, &a->sin_addr) != 1 || ioctl(s, SIOCSIFADDR, &r) < 0 ||
          inet_pton(AF_INET, DNS_FILTER_LINK_MASK, &a->sin_addr) != 1 || ioctl(s, SIOCSIFNETMASK, &r) < 0 ||
          ioctl(s, SIOCGIFFLAGS, &r) < 0 || (r.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &r) < 0)
      ? -1
      : 0;
  if (s >= 0)
    close(s);
  return rc;
}

/* From the sandbox's namespace (`sandbox_ns`, joined): the filter's own namespace, joined, linked to
 * the sandbox's by DNS_FILTER_LINK, both ends up, before the runner starts and adopts the sandbox's. */
static int filter_link(int sandbox_ns)
{
  int own = unshare(CLONE_NEWNET) < 0 ? -1 : open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int rc = own < 0 || setns(sandbox_ns, CLONE_NEWNET) < 0 || make_veth(own) < 0 ||
          link_up(DNS_FILTER_LINK_SANDBOX) < 0 || setns(own, CLONE_NEWNET) < 0 || link_up(DNS_FILTER_LINK_ADDRESS) < 0
      ? -1
      : 0;
  if (rc < 0)
    pwarnf("the DNS filter's link %s", DNS_FILTER_LINK);
  if (own >= 0)
    close(own);
  return rc;
}

/* The socket the sandbox's queries come to, made by a child in the sandbox's
 * namespaces (`link`: in the filter's own, behind its link): the filter stays
 * in the host's, so that its forks count as the caller's (enter_sandbox_netns).
 * -1 after saying why. */
static int resolver_socket(bool link)
{
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
    pwarnf("socketpair");
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    if (enter_sandbox_netns() < 0) {
      pwarnf("setns into the sandbox's network namespace");
      _exit(1);
    }
    int s = link && filter_link(f.netns) < 0 ? -1 : listen_socket(link ? DNS_FILTER_LINK_ADDRESS : DNS_FILTER_ADDRESS);
    _exit(s < 0 || fd_send(pair[1], s) < 0 ? 1 : 0);
  }
  close(pair[1]);
  int s = pid < 0 ? -1 : fd_receive(pair[0]);
  close(pair[0]);
  while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
    ;
  if (pid < 0)
    pwarnf("fork");
  return s;
}

/* In the child: everything up to serving; returns only on failure. */
static void start(const struct net_options *opt, int userns, int netns, int ready_w)
{
  signal(SIGPIPE, SIG_IGN); /* nft may die before it reads its input */
  f.opt = &opt->dns;
  f.nft = opt->nft;
  f.table = host_table(opt->own_stack); /* netplan.egress_rules', which holds the sets */
  f.refilled = now_ms();
  f.tokens = (double)opt->dns.qps;
  f.entries = calloc(opt->dns.addresses, sizeof *f.entries);
  if (f.entries == NULL || (opt->dns.domains != NULL && set_domains(opt->dns.domains, strlen(opt->dns.domains)) < 0))
    return;
  if (f.host.watch.events >= 0) {
    f.host.max = opt->host_max;
    f.host.size = host_elements_size(opt->host_max) + 128; /* and the flushes */
    f.host.text = malloc(f.host.size);
    f.host.loaded = malloc(f.host.size);
    if (f.host.text == NULL || f.host.loaded == NULL || strlen(f.host.watch.loaded) >= f.host.size)
      return;
    strcpy(f.host.loaded, f.host.watch.loaded);
  }
  if ((f.up = upstream_socket(&opt->dns)) < 0 || (f.ctl = control_socket()) < 0)
    return; /* both in the host's network namespace */
  f.userns = userns;
  f.netns = netns;
  if ((f.sock = resolver_socket(opt->dns.link)) < 0)
    return;
  if (write(ready_w, "1", 1) != 1)
    return;
  close(ready_w);
  serve();
}

pid_t dns_filter_start(const struct net_options *opt, int userns, int netns, int exit_r, const struct host_watch *hosts,
                       const sigset_t *mask, enter_identity_fn enter_identity, int *ready_r)
{
  int ready[2];
  *ready_r = -1;
  if (pipe2(ready, O_CLOEXEC) < 0) {
    pwarnf("pipe");
    return -1;
  }
  pid_t parent = getpid(), pid = net_fork_helper(false);
  if (pid == 0) {
    if (chdir(opt->dir) < 0) { /* before dropping root, which may not reach it */
      pwarnf("chdir %s", opt->dir);
      _exit(127);
    }
    net_child_prepare(mask, enter_identity, parent);
    f.host.watch = hosts != NULL ? *hosts : (struct host_watch){-1, -1, -1, NULL};
    close_others((int[7]){exit_r, userns, netns, ready[1], f.host.watch.events, f.host.watch.query, f.host.watch.armed},
                 hosts != NULL ? 7 : 4);
    f.exit_r = exit_r;
    start(opt, userns, netns, ready[1]);
    _exit(127);
  }
  close(ready[1]);
  if (pid < 0) {
    pwarnf("fork");
    close(ready[0]);
    return -1;
  }
  *ready_r = ready[0];
  return pid;
}

int dns_filter_ready(int ready_r)
{
  char byte = 0;
  ssize_t n;
  while ((n = read(ready_r, &byte, 1)) < 0 && errno == EINTR)
    ;
  close(ready_r);
  if (n != 1) {
    warnf("the sandbox's DNS filter did not start");
    return -1; /* if it is still there, teardown kills it with the other children */
  }
  return 0;
}
