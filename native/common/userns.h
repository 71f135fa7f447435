/* userns.h: the sandbox's user namespace, made by the supervisor's runner child
 * before it starts the runner, which then runs inside it (setns) rather than
 * making its own.
 *
 * bwrap and nsjail, run unprivileged, can map only their own uid; a sandbox
 * needs the whole range (0..65535 inside) for su, apt's _apt, chown and images
 * whose files belong to several users.  So the namespace is made here, in two
 * levels, the way bwrap's --disable-userns makes its own:
 *
 *   outer  made by a child running as the sandbox identity (so that identity
 *          owns it and the runner, running as it, holds every capability in
 *          it), mapped by the runner child: directly when it is root, else by
 *          newuidmap/newgidmap (the `uidmap` package) from /etc/subuid; in it
 *          the per-namespace limits are set (user.max_user_namespaces = 1 and
 *          the shares in userns.c), which count against every namespace
 *          below: the sandbox can make no user namespace of its own, and one
 *          sandbox cannot use up what the host grants the identity.
 *   inner  a grandchild born in it (clone), mapped one to one by the outer
 *          one's root, which sends it to the runner child:
 *          the sandbox's namespace, already at the outer one's limit, unless
 *          the runner runs in it and makes its own below it (gVisor's runsc,
 *          for an unprivileged caller: --userns-nested N, room for N more;
 *          sandbox code under gVisor makes none of the host's). */
#if !defined(PSB_USERNS_H)
#define PSB_USERNS_H

#include <signal.h>    /* sigset_t */
#include <stdbool.h>   /* bool */
#include <stddef.h>    /* size_t */
#include <sys/types.h> /* uid_t, gid_t */

enum { USERNS_MAX_RANGES = 4, USERNS_MAX_NESTED = 8 };

struct id_range {
  unsigned long inside, outside, count;
};

struct userns_plan {
  struct id_range uids[USERNS_MAX_RANGES], gids[USERNS_MAX_RANGES];
  size_t nuids, ngids;
  const char *newuidmap, *newgidmap; /* set: map through them (an unprivileged caller) */
  unsigned long nested;              /* user namespaces the runner may make below the sandbox's */
};

/* The identity the outer namespace's creator takes (supervisor.c's
 * enter_identity): its uid owns the namespaces.  0 or -1 with errno. */
typedef int (*userns_identity_fn)(void);

/* Drops root for good: no supplementary groups, every uid and gid `uid` and
 * `gid`, checked to have stuck.  0, or -1 with errno after saying why. */
int identity_drop(uid_t uid, gid_t gid);

/* The outer namespace's maker, started (userns_start) and not yet done with (userns_finish). */
struct userns_maker {
  pid_t pid;
  int ready_r, go_w, sock_r;
  bool detach;
};

/* Starts making the two namespaces: the outer one's maker takes the identity and
 * unshares meanwhile (the supervisor's runner child stages its mounts).  `mask`:
 * the signal mask for children.  `detach`: the maker is made our parent's child,
 * which must reap it (the supervisor, a subreaper that collects every orphan),
 * and userns_finish goes on once its namespace arrives rather than wait for it to
 * exit; else it is ours, waited for.  0, or -1 after saying why on stderr. */
int userns_start(struct userns_maker *m, const struct userns_plan *p, userns_identity_fn enter_identity,
                 const sigset_t *mask, bool detach);

/* Maps the outer namespace and returns an fd of the inner one (close-on-exec),
 * or -1 after saying why on stderr. */
int userns_finish(struct userns_maker *m, const struct userns_plan *p);

/* One of the options that describe a plan (the supervisor's and sandbox-rmtree's):
 * --userns-uid IN:OUT:N, --userns-gid IN:OUT:N (repeated, at most
 * USERNS_MAX_RANGES each), --newuidmap PATH, --newgidmap PATH, --userns-nested
 * N (at most USERNS_MAX_NESTED).  1 if `flag` is
 * one of them and `value` is good, 0 if `flag` is none of them; dies on a bad
 * value (usage_die). */
int userns_option(struct userns_plan *p, const char *flag, const char *value);

/* Dies unless the options make a whole plan: uid and gid ranges together, and
 * the helpers only with ranges, both or neither. */
void userns_check_plan(const struct userns_plan *p);

/* Joins a user namespace made from `p`, as this process's own uid (no identity
 * change), where it holds every capability over the sandbox's ids: how an
 * unprivileged caller removes files that sandbox users other than root own.
 * 0, or -1 after saying why. */
int userns_enter(const struct userns_plan *p);

#endif
