"""The bound on a sandbox's terminals (PYSANDBOX_PTYS_MAX, pysandbox/bounds.py).

Every devpts instance but the host's draws from one pool, kernel.pty.max less
kernel.pty.reserve, that every sandbox and every other container on the host shares:
without a `max=` of its own, one sandbox's code opening /dev/ptmx takes all of it.
devpts_options() is the one source of a sandbox's devpts options (its bound read once
per create, launch.py): nsjail mounts its devpts with them; bwrap's --dev takes no
options, so sandbox-init remounts it with them (--devpts-options) before it drops
CAP_SYS_ADMIN (native/init/caps.c, which checks them).
gVisor's terminals are its own kernel's: the setting is checked all the same, and unused.
"""

from __future__ import annotations

from typing import Optional

from .. import bounds, ptypool
from ..exception import InvalidError

# devpts refuses a larger max= (the kernel's NR_UNIX98_PTY_MAX), and takes max=0 as no bound.
_KERNEL_MAX = 1 << 20
# The runners whose terminals are their own kernel's, not the host's pool.
_OWN_KERNEL = frozenset({"gvisor"})


def ptys_max() -> int:
    """The `max=` of a sandbox's devpts; InvalidError for a setting devpts would refuse, or one past the host's
    pool, which would bound nothing."""
    value, setting = bounds.get("ptys"), bounds.variable("ptys")
    if not 1 <= value <= _KERNEL_MAX:
        raise InvalidError(f"{setting}={value} must be between 1 and {_KERNEL_MAX} "
                           f"({bounds.BOUNDS['ptys'].meaning}).")
    pool = ptypool.host_pool()
    if value > pool:
        raise InvalidError(f"{setting}={value} is more terminals than this host's pool holds: {pool}, its "
                           "kernel.pty.max less kernel.pty.reserve (sysctl), which every sandbox and container "
                           f"shares. Set {setting} to at most {pool}, or raise kernel.pty.max.")
    return value


def devpts_options(bound: int) -> str:
    """The options of a sandbox's devpts of at most `bound` terminals (ptys_max()'s, read once per create).
    devpts takes every option again on a remount: init's remount of bwrap's passes bwrap's own (bubblewrap's
    setup_newroot) with max=, so nsjail's mount is made the same."""
    return f"newinstance,ptmxmode=0666,mode=620,max={bound}"


def sandbox_bound(runner: str, bound: int) -> Optional[int]:
    """The bound a sandbox of `runner` gets for its record: None under gVisor, whose terminals are its own
    kernel's."""
    return None if runner in _OWN_KERNEL else bound


def check_free(runner: str) -> None:
    """ResourceExhaustedError, for create(pty=True) before any work, if a sandbox of `runner` would find no
    terminal for its entrypoint in the host's pool. (Its own bound, at least 1, always holds that one.)"""
    if runner not in _OWN_KERNEL and ptypool.used_up():
        raise ptypool.pool_empty("Sandbox.create(pty=True) cannot give the entrypoint a terminal")
