/* seccomp.c: the syscall filter of every sandbox process.
 *
 * A classic-BPF denylist modelled on Docker's default profile: it refuses
 * what reaches kernel attack surface that sandbox root does not need (new
 * namespaces, mounts, keyrings, bpf, io_uring, module and kexec loading,
 * terminal injection) and allows everything else.  Syscall numbers come from
 * <sys/syscall.h>, so the same table builds for x86-64 and aarch64.
 *
 * Order of checks:
 *   1. the architecture must be the one compiled for: an i386 `int $0x80`
 *      on x86-64 uses other numbers and would walk past a table written with
 *      x86-64 ones (killed);
 *   2. numbers above the newest syscall reviewed here fail with ENOSYS, as on
 *      an older kernel; on x86-64 this includes the x32 ABI (nr | 0x40000000),
 *      which is killed instead;
 *   3. clone3 fails with ENOSYS, so libc falls back to clone, whose flags the
 *      filter can read (clone3 passes them in memory, out of BPF's reach);
 *   4. the denylist: EPERM, what the kernel says to an unprivileged caller;
 *   5. calls refused only for some arguments: clone and unshare with
 *      namespace flags, ioctl TIOCSTI/TIOCLINUX, personality with unsafe
 *      flags.
 * ptrace stays allowed (as in Docker since Linux 4.8, when it stopped being
 * a way around seccomp): gdb and strace work, and pid 1 is protected by
 * being non-dumpable, other sandboxes by being in other pid namespaces. */
#define _GNU_SOURCE 1
#include <errno.h>         /* EPERM, ENOSYS */
#include <linux/audit.h>   /* AUDIT_ARCH_* */
#include <linux/filter.h>  /* struct sock_filter, BPF_* */
#include <linux/seccomp.h> /* struct seccomp_data, SECCOMP_* */
#include <sched.h>         /* CLONE_NEW* */
#include <stddef.h>        /* offsetof */
#include <sys/ioctl.h>     /* TIOCSTI, TIOCLINUX */
#include <sys/prctl.h>     /* prctl, PR_SET_NO_NEW_PRIVS */
#include <sys/syscall.h>   /* __NR_*, SYS_seccomp */
#include <unistd.h>        /* syscall */

#include "seccomp.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "the seccomp filter is written for x86-64 and aarch64"
#endif
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ARG_LO assumes little-endian syscall arguments"
#endif

/* The newest syscall this table was reviewed against (set_mempolicy_home_node,
 * Linux 5.17; the same number on both architectures).  A newer kernel's
 * additions, such as open_tree_attr (a mount API call), get ENOSYS until
 * they are reviewed and this is raised. */
#define NR_REVIEWED_MAX 450
_Static_assert(__NR_set_mempolicy_home_node == NR_REVIEWED_MAX, "NR_REVIEWED_MAX is stale");

#if !defined(CLONE_NEWTIME)
#define CLONE_NEWTIME 0x00000080
#endif
/* CLONE_NEWTIME is absent from clone's mask: there its bit is part of the
 * exit signal (clone only accepts it through clone3). */
#define CLONE_NS_FLAGS \
  (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)
#define UNSHARE_NS_FLAGS (CLONE_NS_FLAGS | CLONE_NEWTIME)

/* Docker's allowed personality() values: Linux, 32-bit Linux, and UNAME26
 * with either; 0xffffffff only queries.  Anything else (ADDR_NO_RANDOMIZE,
 * READ_IMPLIES_EXEC, ...) weakens the process's own hardening. */
#define PER_LINUX 0x0
#define PER_LINUX32 0x8
#define PER_UNAME26 0x20000
#define PER_QUERY 0xffffffff

#define X32_SYSCALL_BIT 0x40000000

#define LOAD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define NR offsetof(struct seccomp_data, nr)
#define ARCH offsetof(struct seccomp_data, arch)
/* The low 32 bits of argument i: all that the kernel reads of the arguments
 * checked here (ioctl's request and personality's value are unsigned int,
 * clone's and unshare's flags are truncated or rejected above bit 31). */
#define ARG_LO(i) offsetof(struct seccomp_data, args[i])
#define JEQ(k, jt, jf) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf))
#define RET(action) BPF_STMT(BPF_RET | BPF_K, (action))
#define FAIL(err) RET(SECCOMP_RET_ERRNO | ((err)&SECCOMP_RET_DATA))
#define ALLOW RET(SECCOMP_RET_ALLOW)
#define KILL RET(SECCOMP_RET_KILL_PROCESS)

/* One denied syscall: if nr matches, fail with EPERM. */
#define DENY(name) JEQ(__NR_##name, 0, 1), FAIL(EPERM)

/* clone or unshare: EPERM if any of `mask` is set in the flags (argument 0
 * on both architectures), else allowed. */
#define DENY_FLAGS(name, mask) \
  JEQ(__NR_##name, 0, 4), LOAD(ARG_LO(0)), BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (mask), 0, 1), FAIL(EPERM), ALLOW

/* clang-format off: one row per rule reads as the policy */
static const struct sock_filter filter[] = {
    LOAD(ARCH),
    JEQ(NATIVE_ARCH, 1, 0),
    KILL,
    LOAD(NR),
#if defined(__x86_64__)
    BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, NR_REVIEWED_MAX, 0, 4),
    JEQ(0xffffffff, 1, 0), /* syscall(-1): ENOSYS, as without a filter */
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, 1, 0),
    FAIL(ENOSYS),
    KILL,
#else
    BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, NR_REVIEWED_MAX, 0, 1),
    FAIL(ENOSYS),
#endif
    JEQ(__NR_clone3, 0, 1),
    FAIL(ENOSYS),

    /* Namespaces and mounts: a sandbox's view of the system is fixed at start. */
    DENY(setns),
    DENY(mount),
    DENY(umount2),
    DENY(pivot_root),
    DENY(move_mount), /* the new mount API, Linux 5.2 */
    DENY(open_tree),
    DENY(fsopen),
    DENY(fsconfig),
    DENY(fsmount),
    DENY(fspick),
    DENY(mount_setattr), /* Linux 5.12 */
    /* Kernel keyrings are not namespaced: keys would be shared with the host. */
    DENY(keyctl),
    DENY(add_key),
    DENY(request_key),
    /* Large kernel attack surface reachable without privilege. */
    DENY(bpf),
    DENY(perf_event_open), /* also leaks host activity */
    DENY(userfaultfd),     /* stalls kernel threads at will: the race exploits' tool */
    DENY(io_uring_setup),  /* bypasses seccomp for the operations it performs */
    DENY(io_uring_enter),
    DENY(io_uring_register),
    /* File handles reach files outside the sandbox's mounts (CVE "shocker"). */
    DENY(open_by_handle_at),
    DENY(name_to_handle_at),
    /* The kernel itself: modules, kexec, reboot, swap, clocks, accounting. */
    DENY(init_module),
    DENY(finit_module),
    DENY(delete_module),
    DENY(kexec_load),
    DENY(kexec_file_load),
    DENY(reboot),
    DENY(swapon),
    DENY(swapoff),
    DENY(acct),
    DENY(settimeofday),
    DENY(clock_settime),
    DENY(clock_adjtime),
    DENY(quotactl),
    DENY(quotactl_fd),
    DENY(syslog), /* the host's kernel log */
    DENY(lookup_dcookie),
    DENY(vhangup),
    DENY(fanotify_init), /* watches the whole mount, host files included */
#if defined(__x86_64__)
    /* x86-64 only: obsolete or hardware-level calls. */
    DENY(iopl),
    DENY(ioperm),
    DENY(modify_ldt), /* a history of kernel bugs; nothing modern needs it */
    DENY(create_module),
    DENY(get_kernel_syms),
    DENY(query_module),
    DENY(uselib),
    DENY(ustat),
    DENY(sysfs),
    DENY(_sysctl),
    DENY(nfsservctl),
#endif

    /* Refused only for some arguments. */
    DENY_FLAGS(clone, CLONE_NS_FLAGS),
    DENY_FLAGS(unshare, UNSHARE_NS_FLAGS),
    /* TIOCSTI pushes input into a terminal (the caller's, were it shared);
   * TIOCLINUX can do the same on a virtual console. */
    JEQ(__NR_ioctl, 0, 5),
    LOAD(ARG_LO(1)),
    JEQ(TIOCSTI, 2, 0),
    JEQ(TIOCLINUX, 1, 0),
    ALLOW,
    FAIL(EPERM),
    JEQ(__NR_personality, 0, 8),
    LOAD(ARG_LO(0)),
    JEQ(PER_LINUX, 5, 0),
    JEQ(PER_LINUX32, 4, 0),
    JEQ(PER_UNAME26, 3, 0),
    JEQ(PER_UNAME26 | PER_LINUX32, 2, 0),
    JEQ(PER_QUERY, 1, 0),
    FAIL(EPERM),
    ALLOW,

    ALLOW,
};
/* clang-format on */

int seccomp_install(void)
{
  struct sock_fprog prog = {
      .len = sizeof filter / sizeof filter[0],
      .filter = (struct sock_filter *)filter,
  };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return -1;
  /* TSYNC: every thread of the caller, should it ever have more than one;
   * a positive result names a thread that could not be synchronised. */
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (r > 0)
    errno = EBUSY;
  return r == 0 ? 0 : -1;
}
