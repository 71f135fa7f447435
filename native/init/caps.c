/* caps.c: narrowing sandbox root's capabilities, and the one use of CAP_SYS_ADMIN before (caps.h). */
#define _GNU_SOURCE 1
#include "caps.h"

#include <errno.h>            /* errno */
#include <linux/capability.h> /* CAP_* */
#include <stdbool.h>          /* bool */
#include <stdint.h>           /* uint32_t, UINT32_MAX */
#include <stdlib.h>           /* strtoul */
#include <string.h>           /* strcspn, strlen, strncmp, strspn */
#include <sys/mount.h>        /* mount, MS_* */
#include <sys/prctl.h>        /* prctl, PR_CAPBSET_*, PR_CAP_AMBIENT */
#include <sys/statvfs.h>      /* statvfs, ST_* */
#include <sys/syscall.h>      /* SYS_capget, SYS_capset */
#include <unistd.h>           /* syscall */

#include "util.h"

static const int CAPS_KEPT[] = {
    CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,     CAP_MKNOD, CAP_SETGID,      CAP_SETUID,
    CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL,  CAP_AUDIT_WRITE,
};

static bool kept(int cap)
{
  for (size_t i = 0; i < sizeof CAPS_KEPT / sizeof *CAPS_KEPT; i++)
    if (CAPS_KEPT[i] == cap)
      return true;
  return false;
}

void caps_limit(void)
{
  uint32_t keep[2] = {0, 0};
  for (size_t i = 0; i < sizeof CAPS_KEPT / sizeof *CAPS_KEPT; i++)
    keep[CAPS_KEPT[i] / 32] |= 1u << (CAPS_KEPT[i] % 32);
  for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
    if (!kept(cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      pdie("dropping capability %d from the bounding set", cap);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    pdie("clearing ambient capabilities");
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &header, data) < 0)
    pdie("capget");
  data[0].inheritable = data[1].inheritable = 0; /* nothing for a file's capabilities to pick up */
  /* and none of its own beyond them: under bwrap it held CAP_SYS_ADMIN for caps_bound_ptys */
  for (int k = 0; k < 2; k++) {
    data[k].permitted &= keep[k];
    data[k].effective &= keep[k];
  }
  if (syscall(SYS_capset, &header, data) < 0)
    pdie("narrowing capabilities");
}

/* The devpts options init takes: "newinstance" and these, each at most once, with a number. */
static const struct {
  const char *key; /* with its '=' */
  int base;
  unsigned long min, max;
  bool required;
} DEVPTS_KEYS[] = {
    {"mode=", 8, 0, 0777, false},
    {"ptmxmode=", 8, 0, 0777, false},
    {"gid=", 10, 0, UINT32_MAX, false},
    {"max=", 10, 1, CAPS_PTYS_MAX, true}, /* the bound itself; devpts takes max=0 as none */
};

/* NULL if OPT (LEN characters) is one of them, else why not; marks its key in *SEEN. */
static const char *devpts_option_refused(const char *opt, size_t len, unsigned *seen)
{
  if (len == strlen("newinstance") && strncmp(opt, "newinstance", len) == 0)
    return NULL;
  for (unsigned k = 0; k < sizeof DEVPTS_KEYS / sizeof *DEVPTS_KEYS; k++) {
    size_t key = strlen(DEVPTS_KEYS[k].key), n = len - key;
    if (len < key || strncmp(opt, DEVPTS_KEYS[k].key, key) != 0)
      continue;
    if (*seen & 1u << k)
      return "an option given twice";
    *seen |= 1u << k;
    const char *digits = DEVPTS_KEYS[k].base == 8 ? "01234567" : "0123456789";
    if (n == 0 || n > 10 || strspn(opt + key, digits) < n)
      return "a value that is no number";
    unsigned long value = strtoul(opt + key, NULL, DEVPTS_KEYS[k].base);
    return value < DEVPTS_KEYS[k].min || value > DEVPTS_KEYS[k].max ? "a value out of range" : NULL;
  }
  return "an option other than newinstance, mode=, ptmxmode=, gid= and max=";
}

const char *caps_devpts_refused(const char *options)
{
  if (strlen(options) >= CAPS_DEVPTS_OPTIONS_MAX)
    return "too long";
  unsigned seen = 0;
  for (const char *opt = options;; opt++) {
    size_t len = strcspn(opt, ",");
    const char *why = devpts_option_refused(opt, len, &seen);
    if (why != NULL)
      return why;
    opt += len;
    if (*opt == '\0')
      break;
  }
  for (unsigned k = 0; k < sizeof DEVPTS_KEYS / sizeof *DEVPTS_KEYS; k++)
    if (DEVPTS_KEYS[k].required && !(seen & 1u << k))
      return "no max=";
  return NULL;
}

void caps_bound_ptys(const char *options)
{
  struct statvfs st;
  if (statvfs("/dev/pts", &st) < 0)
    pdie("bounding the sandbox's terminals: /dev/pts");
  /* A remount sets the mount's flags too: keep the ones bwrap gave it. */
  static const unsigned long same[][2] = {
      {ST_RDONLY, MS_RDONLY},   {ST_NOSUID, MS_NOSUID},         {ST_NODEV, MS_NODEV},       {ST_NOEXEC, MS_NOEXEC},
      {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME},
  };
  unsigned long flags = MS_REMOUNT;
  for (size_t i = 0; i < sizeof same / sizeof *same; i++)
    flags |= (st.f_flag & same[i][0]) ? same[i][1] : 0;
  /* devpts takes every option again on a remount: bwrap's (bubblewrap's setup_newroot), and max= */
  if (mount(NULL, "/dev/pts", NULL, flags, options) < 0)
    pdie("bounding the sandbox's terminals: remounting /dev/pts with %s", options);
}
