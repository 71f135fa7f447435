"""What of the kernel's /proc a sandbox must not see.

The sandbox gets its own procfs (bwrap --proc), which shows only its own
processes, but a few files in it describe the whole host. runc and Docker
mask these (opencontainers/runc libcontainer/specconv MaskPaths); we mask
the same ones, but only those that exist on this kernel and that the sandbox
could read at all: sandbox root is an unmapped "other" to the root-owned
files of /proc, so a file without o+r or o+w bits (kcore, timer_list on
most kernels) is already closed, like an empty directory, and masking either
would only cost a mount at every start.
/proc/sys, /proc/irq, /proc/bus and /proc/sysrq-trigger need nothing here:
bwrap remounts them read-only whenever the sandbox could write to them.
"""

from __future__ import annotations

import functools
import os
import stat
from typing import Tuple

# runc's masked paths under /proc (files get /dev/null, directories an empty read-only tmpfs).
PROC_MASKED = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
)

_OTHER_ACCESS = stat.S_IROTH | stat.S_IWOTH


def proc_masks() -> Tuple[Tuple[str, bool], ...]:
    """(path, is a directory) for each /proc path to mask that the sandbox could read on this kernel
    (read at each call: the runners' argument builders cache their own results)."""
    masks = []
    for path in PROC_MASKED:
        try:
            info = os.stat(path)
        except OSError:
            continue
        if not info.st_mode & _OTHER_ACCESS or (stat.S_ISDIR(info.st_mode) and not os.listdir(path)):
            continue  # closed to the sandbox already, or an empty directory
        masks.append((path, stat.S_ISDIR(info.st_mode)))
    return tuple(masks)


@functools.lru_cache(maxsize=None)
def proc_mask_args(at: str = "/proc") -> Tuple[str, ...]:
    """bwrap arguments, to follow `--proc AT`, masking proc_masks()."""
    argv = []
    for path, is_dir in proc_masks():
        path = at + path[len("/proc"):]
        argv += ["--tmpfs", path, "--remount-ro", path] if is_dir else ["--ro-bind", "/dev/null", path]
    return tuple(argv)
