/* spare.c: a warm spare (spare.h). */
#define _GNU_SOURCE 1
#include "spare.h"

#include <errno.h>        /* errno, EINTR */
#include <fcntl.h>        /* open, fcntl, F_DUPFD_CLOEXEC, O_* */
#include <poll.h>         /* poll */
#include <signal.h>       /* sigprocmask, sigdelset, sigaddset */
#include <stdint.h>       /* UINT32_MAX */
#include <stdlib.h>       /* calloc, exit */
#include <string.h>       /* memcpy, memset, strcmp, strdup, strlen */
#include <sys/signalfd.h> /* signalfd */
#include <sys/socket.h>   /* recvmsg, send, CMSG_* */
#include <unistd.h>       /* close, close_range, dup2 */

#include "fds.h"
#include "netns.h"
#include "opts.h"
#include "util.h"

enum {
  CLAIM_MAX = 64 * 1024, /* bytes of a claim's command line (pysandbox/runtime/spare.py keeps to it) */
  CLAIM_FDS_MIN = 6,
  CLAIM_FDS_MAX = 7,
  FD_HIGH = 64, /* above fds.h's range: where the spare keeps what is its own */
};

/* Where each of a claim's descriptors goes, in the order sent; the second is stderr too. */
static const int claim_targets[CLAIM_FDS_MAX] = {
    FD_CONFIRM, 1, FD_LISTEN, FD_ENTRY_OUT, FD_ENTRY_ERR, FD_INIT_CONFIG, FD_RUNNER_CONFIG};

static struct spare *parsing; /* the options' callbacks fill it */

static void identity_option(const struct opt *o, char **values)
{
  userns_option(&parsing->plan, o->name, values[0]);
}

static void parse_spare_args(char **argv, struct spare *s, const char **room, bool *no_namespaces)
{
  parsing = s;
  uint64_t uid = 0, gid = 0;
  struct opt table[] = {
      {.name = "--room", .values = "TEXT", .kind = OPT_STRING, .to = room, .required = true},
      {.name = "--no-namespaces", .values = NULL, .kind = OPT_FLAG, .to = no_namespaces},
      {.name = "--as-uid", .values = "U", .kind = OPT_NUMBER, .to = &uid, .max = UINT32_MAX - 1},
      {.name = "--as-gid", .values = "G", .kind = OPT_NUMBER, .to = &gid, .max = UINT32_MAX - 1},
      {.name = "--userns-uid", .values = "IN:OUT:N", .kind = OPT_CALL, .call = identity_option, .many = true},
      {.name = "--userns-gid", .values = "IN:OUT:N", .kind = OPT_CALL, .call = identity_option, .many = true},
      {.name = "--newuidmap", .values = "PATH", .kind = OPT_CALL, .call = identity_option},
      {.name = "--newgidmap", .values = "PATH", .kind = OPT_CALL, .call = identity_option},
      {.name = NULL},
  };
  const struct opts opts = {table, ""};
  /* argv[1] is --spare: opts_parse starts after its argv[0]. */
  if (argv[opts_parse(&opts, argv + 1) + 1] != NULL)
    opts_usage_die(&opts, "unexpected operand after the options");
  s->as_user = opts_find(&opts, "--as-uid")->given > 0;
  if (s->as_user != (opts_find(&opts, "--as-gid")->given > 0))
    usage_die("--as-uid and --as-gid go together");
  s->uid = (uid_t)uid;
  s->gid = (gid_t)gid;
  userns_check_plan(&s->plan);
  /* The command line's words are overwritten with the claim's (name_claim). */
  if ((s->plan.newuidmap != NULL && (s->plan.newuidmap = strdup(s->plan.newuidmap)) == NULL) ||
      (s->plan.newgidmap != NULL && (s->plan.newgidmap = strdup(s->plan.newgidmap)) == NULL))
    die("out of memory");
}

static struct spare *identity_of; /* spare_identity's */

static int spare_identity(void)
{
  return identity_of->as_user ? identity_drop(identity_of->uid, identity_of->gid) : 0;
}

static int high(int fd)
{
  if (fd < 0)
    return -1;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, FD_HIGH);
  close(fd);
  return moved;
}

/* The namespaces, as the runner child would make them; none if that fails (it says why in a
 * log nobody reads: the runner child will fail the same way, in the sandbox's log). */
static void make_namespaces(struct spare *s)
{
  if (s->plan.nuids == 0)
    return;
  sigset_t mask; /* as main() gives children: the creator's signals back */
  sigprocmask(SIG_BLOCK, NULL, &mask);
  termination_signals(&mask, false);
  identity_of = s;
  struct userns_maker maker;
  int userns =
      userns_start(&maker, &s->plan, spare_identity, &mask, false) < 0 ? -1 : high(userns_finish(&maker, &s->plan));
  int netns = userns < 0 ? -1 : high(net_namespace_in(userns));
  if (netns < 0) {
    if (userns >= 0)
      close(userns);
    return;
  }
  s->userns = userns;
  s->netns = netns;
}

/* Receives the claim: its command line (heap), its descriptors in fds; exits on end of file. */
static char *receive_claim(int ctl, int fds[CLAIM_FDS_MAX], int *nfds, size_t *len)
{
  char *buf = malloc(CLAIM_MAX);
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE((CLAIM_FDS_MAX + 1) * sizeof(int))];
  } control;
  struct iovec iov = {.iov_base = buf, .iov_len = CLAIM_MAX};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  if (buf == NULL)
    die("out of memory");
  ssize_t n;
  while ((n = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  if (n == 0)
    exit(0); /* never claimed */
  if (n < 0)
    pdie("receiving the sandbox");
  /* The control buffer has room for one descriptor more than a claim may have: more come cut short. */
  int got[CLAIM_FDS_MAX + 1];
  *nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && *nfds == 0) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      *nfds = count > CLAIM_FDS_MAX + 1 ? CLAIM_FDS_MAX + 1 : (int)count;
      memcpy(got, CMSG_DATA(c), (size_t)*nfds * sizeof(int));
    }
  if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || *nfds < CLAIM_FDS_MIN || *nfds > CLAIM_FDS_MAX ||
      buf[n - 1] != '\0')
    die("a claim must be a command line of at most %d bytes, each word NUL-ended, with %d or %d descriptors", CLAIM_MAX,
        CLAIM_FDS_MIN, CLAIM_FDS_MAX);
  memcpy(fds, got, (size_t)*nfds * sizeof(int));
  *len = (size_t)n;
  return buf;
}

/* Puts the claim's descriptors where fds.h says (moved out of the way first: they may sit there). */
static void place(int fds[CLAIM_FDS_MAX], int nfds)
{
  for (int i = 0; i < nfds; i++)
    if ((fds[i] = high(fds[i])) < 0)
      pdie("placing the sandbox's descriptors");
  for (int i = 0; i < nfds; i++)
    if (dup2(fds[i], claim_targets[i]) < 0 || (claim_targets[i] == 1 && dup2(fds[i], 2) < 0))
      pdie("placing the sandbox's descriptors");
  for (int i = 0; i < nfds; i++)
    close(fds[i]);
}

/* /proc/PID/cmdline shows the claim's words, as far as the spare's own leave room. */
static void name_claim(char **argv, const char *claim, size_t len)
{
  char *start = argv[0], *end = argv[0];
  for (char **a = argv; *a != NULL; a++)
    end = *a + strlen(*a) + 1;
  size_t room = (size_t)(end - start);
  size_t n = len < room ? len : room;
  memcpy(start, claim, n);
  memset(start + n, 0, room - n);
  start[room - 1] = '\0';
}

/* The claim's words as an argv (pointers into `buf`). */
static char **split(char *buf, size_t len)
{
  size_t words = 0;
  for (size_t i = 0; i < len; i++)
    words += buf[i] == '\0';
  char **argv = calloc(words + 1, sizeof *argv);
  if (argv == NULL)
    die("out of memory");
  for (size_t i = 0, w = 0; i < len; i += strlen(buf + i) + 1)
    argv[w++] = buf + i;
  return argv;
}

void termination_signals(sigset_t *set, bool add)
{
  static const int ends[] = {SIGTERM, SIGINT, SIGHUP};
  for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
    (add ? sigaddset : sigdelset)(set, ends[i]);
}

/* Until the claim (or end of file) is there to read.  Its creator spawned it with the supervisor's
 * termination signals blocked, for the supervisor it becomes: one that comes while it waits with no claim
 * sent is no sandbox's terminate(), and ends it unclaimed (its creator sees its end of the socket close).
 * One that comes with the claim there may be (a terminate() right after the create returned): it stays
 * pending, for the supervisor's signalfd. */
static void wait_for_claim(int ctl)
{
  sigset_t ends;
  sigemptyset(&ends);
  termination_signals(&ends, true);
  int sigfd = signalfd(-1, &ends, SFD_CLOEXEC); /* polled, never read: what it reports stays pending */
  for (;;) {
    struct pollfd p[2] = {{.fd = ctl, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
    if (poll(p, 2, -1) < 0 && errno != EINTR)
      pdie("waiting for the sandbox");
    if (p[0].revents != 0)
      break;
    if (p[1].revents != 0 && poll(p, 1, 0) == 0) /* a signal, and still no claim */
      exit(0);
  }
  if (sigfd >= 0)
    close(sigfd);
}

char **spare_wait(char **argv, struct spare *s)
{
  *s = (struct spare){.userns = -1, .netns = -1};
  const char *room = NULL;
  bool no_namespaces = false;
  parse_spare_args(argv, s, &room, &no_namespaces);
  (void)room;
  close_range(3, ~0U, 0); /* nothing of the creator's but the socket */
  int ctl = fcntl(FD_CONFIRM, F_DUPFD_CLOEXEC, FD_HIGH);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (ctl < 0 || null < 0 || dup2(null, FD_CONFIRM) < 0)
    pdie("the spare's descriptors");
  close(null);
  if (!no_namespaces)
    make_namespaces(s);
  wait_for_claim(ctl);
  int fds[CLAIM_FDS_MAX], nfds;
  size_t len;
  char *claim = receive_claim(ctl, fds, &nfds, &len);
  /* Taken, before anything starts: a creator that finds us ended must not start the sandbox again. */
  (void)send(ctl, "t", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  close(ctl);
  place(fds, nfds);
  name_claim(argv, claim, len);
  return split(claim, len);
}

static bool same_ranges(const struct id_range *a, const struct id_range *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (a[i].inside != b[i].inside || a[i].outside != b[i].outside || a[i].count != b[i].count)
      return false;
  return true;
}

static bool same_path(const char *a, const char *b)
{
  return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

bool spare_fits(const struct spare *s, bool as_user, uid_t uid, gid_t gid, const struct userns_plan *p)
{
  const struct userns_plan *q = &s->plan;
  return s->userns >= 0 && as_user == s->as_user && (!as_user || (uid == s->uid && gid == s->gid)) &&
      p->nuids == q->nuids && p->ngids == q->ngids && same_ranges(p->uids, q->uids, p->nuids) &&
      same_ranges(p->gids, q->gids, p->ngids) && same_path(p->newuidmap, q->newuidmap) &&
      same_path(p->newgidmap, q->newgidmap) && p->nested == 0;
}

void spare_release(struct spare *s)
{
  if (s->userns >= 0)
    close(s->userns);
  if (s->netns >= 0)
    close(s->netns);
  s->userns = s->netns = -1;
}
