/* caps.c: narrowing sandbox root's capabilities (caps.h). */
#define _GNU_SOURCE 1
#include "caps.h"

#include <errno.h>            /* errno */
#include <linux/capability.h> /* CAP_* */
#include <stdbool.h>          /* bool */
#include <sys/prctl.h>        /* prctl, PR_CAPBSET_*, PR_CAP_AMBIENT */
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
  if (syscall(SYS_capset, &header, data) < 0)
    pdie("clearing inheritable capabilities");
}
