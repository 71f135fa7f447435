/* mount_main.c: sandbox-mount, how the host reaches into a running sandbox's
 * mount namespace (Sandbox.mount_image, unmount_image, snapshot_directory).
 *
 *   sandbox-mount --pidfd FD [--as-sandbox-root] --attach PATH --upper DIR --work DIR --lower DIR...
 *   sandbox-mount --pidfd FD [--as-sandbox-root] --detach PATH --mnt-id N
 *   sandbox-mount --pidfd FD [--as-sandbox-root] --copy PATH --dest FD --max-bytes N --max-entries N
 *
 * FD --pidfd is a pidfd of the sandbox's init (its PIDFD request).  The first
 * step joins the sandbox's user namespace, which only its owner (the caller,
 * or host root) may; a root caller then becomes that namespace's root
 * (--as-sandbox-root: the sandbox's root id on the host), so every step
 * after runs with exactly the rights bubblewrap's own overlay mount has:
 * capabilities over the sandbox's namespaces, none over the host's.
 *
 * --attach: makes a private mount namespace in the sandbox's user namespace
 *   (a copy of the host's, where the caller's DIRs are found and opened),
 *   creates a detached overlay there (lowers top first, its own upper,
 *   user.overlay xattrs as every layer of ours), nosuid and nodev; then joins
 *   the sandbox's mount namespace and moves it onto PATH, created if missing.
 *   Prints the mount's id.
 * --detach: lazily unmounts PATH, only if the mount there has id --mnt-id (one
 *   --attach made): never a volume, /proc or a mask the runner put there.
 * --copy: copies the directory PATH of the sandbox into --dest, as
 *   common/tree.h's walk does (never following a symlink of the source, never
 *   crossing into another mount); at most --max-bytes of file data and
 *   --max-entries entries (exit 3 past either).
 *
 * Every PATH resolves in the sandbox's root (openat2 RESOLVE_IN_ROOT, no magic
 * links): a symlink planted in the sandbox can only lead inside it.
 *
 * Exit 0; 2 for a bad command line; else 3 for a bound or 1 for anything
 * else, with its report on stdout for the caller's exception (report.h). */
#define _GNU_SOURCE 1
#include <errno.h>         /* errno */
#include <fcntl.h>         /* open, openat, O_* */
#include <grp.h>           /* setgroups */
#include <linux/mount.h>   /* FSCONFIG_*, MOVE_MOUNT_*, MOUNT_ATTR_* */
#include <linux/openat2.h> /* struct open_how, RESOLVE_* */
#include <limits.h>        /* PATH_MAX */
#include <sched.h>         /* setns, unshare, CLONE_* */
#include <stdio.h>         /* printf, snprintf */
#include <string.h>        /* strcmp, strchr */
#include <sys/stat.h>      /* statx, mkdirat */
#include <sys/syscall.h>   /* SYS_* */
#include <unistd.h>        /* syscall, setresuid, fchown, read, write */

#include "fdutil.h"
#include "opts.h"
#include "report.h"
#include "tree.h"
#include "util.h"

const char *const progname = "sandbox-mount";

#if !defined(MNT_DETACH) /* <sys/mount.h> would clash with <linux/mount.h> */
#define MNT_DETACH 2
#define UMOUNT_NOFOLLOW 8
#endif
#define MAX_LOWERS 128

static uint64_t pidfd, mnt_id, dest, max_bytes, max_entries;
static bool as_sandbox_root;
static const char *lowers[MAX_LOWERS];
static unsigned nlowers;
static const char *attach_path, *detach_path, *copy_path, *upper, *work;

static void add_lower(const struct opt *o, char **values)
{
  (void)o;
  if (nlowers == MAX_LOWERS || values[0][0] != '/')
    usage_die("bad --lower: %s", values[0]);
  lowers[nlowers++] = values[0];
}

static void enter_userns(void)
{
  if (setns((int)pidfd, CLONE_NEWUSER) < 0)
    report_fail(errno, "joining the sandbox's user namespace");
}

/* Host root joined with its own ids, which the namespace does not map: from
 * here on act as the namespace's root, as bubblewrap does. */
static void become_sandbox_root(void)
{
  if (as_sandbox_root && (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
    report_fail(errno, "becoming the sandbox's root");
}

/* "/proc/self/fd/N" of the directory `path` (a host path the caller made). */
static void open_host_dir(const char *path, char *out, size_t size)
{
  int fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    report_fail(errno, path);
  snprintf(out, size, "/proc/self/fd/%d", fd);
}

static void enter_mountns(void)
{
  if (setns((int)pidfd, CLONE_NEWNS) < 0)
    report_fail(errno, "joining the sandbox's mount namespace");
}

/* openat2 with RESOLVE_IN_ROOT answers EAGAIN when any rename or mount on the host raced the
 * walk (a global sequence count): retried, a bounded number of times, as _beneath.py does. */
enum { RESOLVE_RETRIES = 64 };

static int open_in_root(int root, const char *path, uint64_t flags)
{
  struct open_how how = {.flags = flags | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  int fd = -1;
  for (int i = 0; i < RESOLVE_RETRIES; i++) {
    fd = (int)syscall(SYS_openat2, root, path, &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN)
      break;
  }
  return fd;
}

/* PATH's directory in the sandbox (resolved in its root), each missing
 * component made (0755, as sandbox root) when `create`. */
static int sandbox_dir(const char *path, bool create)
{
  int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    report_fail(errno, "opening the sandbox's root");
  if (strlen(path) >= PATH_MAX)
    report_fail(ENAMETOOLONG, path);
  char prefix[PATH_MAX];
  int dir = dup(root);
  const char *p = path;
  while (*p != '\0') {
    while (*p == '/')
      p++;
    if (*p == '\0')
      break;
    const char *end = strchrnul(p, '/');
    char name[PATH_MAX];
    memcpy(name, p, (size_t)(end - p));
    name[end - p] = '\0';
    memcpy(prefix, path, (size_t)(end - path)); /* the path up to this component */
    prefix[end - path] = '\0';
    int next = open_in_root(root, prefix, O_PATH | O_DIRECTORY);
    if (next < 0 && errno == ENOENT && create && strcmp(name, "..") != 0) {
      if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST)
        report_fail(errno, prefix);
      next = open_in_root(root, prefix, O_PATH | O_DIRECTORY);
    }
    if (next < 0)
      report_fail(errno, prefix);
    close(dir);
    dir = next;
    p = end;
  }
  close(root);
  return dir;
}

static void kernel_says(int fsfd, const char *what)
{
  int err = errno;
  char line[512];
  ssize_t n;
  while ((n = read(fsfd, line, sizeof line - 1)) > 0) {
    line[n] = '\0';
    warnf("%s", line);
  }
  report_fail(err, what);
}

static int attach(void)
{
  char lowerdir[MAX_LOWERS * 24] = "", upperdir[32], workdir[32], one[32];
  enter_userns();
  /* A mount namespace of our own, owned by the sandbox's user namespace: there
   * we may create the overlay, whose layers must be mounts of the namespace
   * it is created in (so opened here, not inherited). */
  if (unshare(CLONE_NEWNS) < 0)
    report_fail(errno, "a private mount namespace");
  for (unsigned i = 0; i < nlowers; i++) {
    open_host_dir(lowers[i], one, sizeof one);
    size_t used = strlen(lowerdir);
    snprintf(lowerdir + used, sizeof lowerdir - used, "%s%s", i ? ":" : "", one);
  }
  open_host_dir(upper, upperdir, sizeof upperdir);
  open_host_dir(work, workdir, sizeof workdir);
  become_sandbox_root();
  int fsfd = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
  if (fsfd < 0)
    report_fail(errno, "fsopen overlay");
  if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "lowerdir", lowerdir, 0) < 0 ||
      syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "upperdir", upperdir, 0) < 0 ||
      syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "workdir", workdir, 0) < 0 ||
      syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0 ||
      syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
    kernel_says(fsfd, "creating the overlay");
  int mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  if (mfd < 0)
    kernel_says(fsfd, "fsmount");
  enter_mountns();
  umask(022);
  int target = sandbox_dir(attach_path, true);
  if (syscall(SYS_move_mount, mfd, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    report_fail(errno, attach_path);
  struct statx sx;
  if (statx(mfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID))
    report_fail(errno ? errno : ENOSYS, "the mount's id");
  printf("%llu\n", (unsigned long long)sx.stx_mnt_id);
  return 0;
}

static int detach(void)
{
  enter_userns();
  become_sandbox_root();
  enter_mountns();
  int dir = sandbox_dir(detach_path, false);
  struct statx sx;
  if (statx(dir, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) < 0)
    report_fail(errno, detach_path);
  if (!(sx.stx_mask & STATX_MNT_ID) || sx.stx_mnt_id != mnt_id ||
      !(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT & sx.stx_attributes))
    report_fail(EINVAL, "not the mount mount_image made there");
  if (fchdir(dir) < 0 || syscall(SYS_umount2, ".", MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
    report_fail(errno, detach_path);
  return 0;
}

static int copy(void)
{
  enter_userns();
  become_sandbox_root();
  enter_mountns();
  int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    report_fail(errno, "opening the sandbox's root");
  int src = open_in_root(root, copy_path, O_RDONLY | O_DIRECTORY);
  if (src < 0)
    report_fail(errno, copy_path);
  int refused = tree_source_refused(src);
  if (refused != 0)
    report_fail(refused, copy_path);
  struct tree_bounds b = {.max_bytes = max_bytes, .max_entries = max_entries};
  tree_walk(src, (int)dest, &tree_local, NULL, &b);
  return 0;
}

int main(int argc, char **argv)
{
  (void)argc;
  dest = UINT64_MAX;
  struct opt table[] = {
      {.name = "--pidfd", .values = "FD", .kind = OPT_NUMBER, .to = &pidfd, .max = 1 << 20, .required = true},
      {.name = "--as-sandbox-root", .kind = OPT_FLAG, .to = &as_sandbox_root},
      {.name = "--attach", .values = "PATH", .kind = OPT_STRING, .to = &attach_path, .absolute = true},
      {.name = "--upper", .values = "DIR", .kind = OPT_STRING, .to = &upper, .absolute = true},
      {.name = "--work", .values = "DIR", .kind = OPT_STRING, .to = &work, .absolute = true},
      {.name = "--lower", .values = "DIR", .kind = OPT_CALL, .call = add_lower, .many = true},
      {.name = "--detach", .values = "PATH", .kind = OPT_STRING, .to = &detach_path, .absolute = true},
      {.name = "--mnt-id", .values = "N", .kind = OPT_NUMBER, .to = &mnt_id, .max = UINT64_MAX - 1},
      {.name = "--copy", .values = "PATH", .kind = OPT_STRING, .to = &copy_path, .absolute = true},
      {.name = "--dest", .values = "FD", .kind = OPT_NUMBER, .to = &dest, .max = 1 << 20},
      {.name = "--max-bytes", .values = "N", .kind = OPT_NUMBER, .to = &max_bytes, .max = UINT64_MAX - 1},
      {.name = "--max-entries", .values = "N", .kind = OPT_NUMBER, .to = &max_entries, .max = UINT64_MAX - 1},
      {.name = NULL},
  };
  const struct opts opts = {table, NULL};
  if (argv[opts_parse(&opts, argv)] != NULL)
    opts_usage_die(&opts, "no operands");
  if (attach_path != NULL && !detach_path && !copy_path && upper != NULL && work != NULL && nlowers > 0)
    return attach();
  if (detach_path != NULL && !attach_path && !copy_path && opts_find(&opts, "--mnt-id")->given)
    return detach();
  if (copy_path != NULL && !attach_path && !detach_path && dest != UINT64_MAX &&
      opts_find(&opts, "--max-bytes")->given && opts_find(&opts, "--max-entries")->given)
    return copy();
  opts_usage_die(&opts,
                 "one of --attach (with --upper, --work, --lower), --detach (with --mnt-id) "
                 "or --copy (with --dest, --max-bytes, --max-entries)");
}
