"""The host's terminal pool, and the error for a sandbox that found no terminal in it.

Every devpts instance but the host's draws from one pool, kernel.pty.max less kernel.pty.reserve,
that every sandbox and every other container on the host shares (drivers/tty/pty.c). A leaf: the
runtime bounds a sandbox's share of it (runtime/ptys.py), the core and the records word its errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from . import bounds
from .exception import ResourceExhaustedError

# The pool's sysctls: max and reserve, and nr, the terminals in use.
KERNEL_PTY = Path("/proc/sys/kernel/pty")


def _kernel(name: str) -> int:
    # Plain os calls: a create reads four of these, and a text file object costs four times the read.
    fd = os.open(os.path.join(KERNEL_PTY, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        return int(os.read(fd, 64))
    finally:
        os.close(fd)


def host_pool() -> int:
    """The terminals all devpts instances but the host's share: kernel.pty.max less kernel.pty.reserve."""
    return _kernel("max") - _kernel("reserve")


def used_up() -> bool:
    """Whether every terminal of the pool is in use."""
    return _kernel("nr") >= host_pool()


def pool_empty(what: str) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"{what}: the host's terminals are all in use ({_kernel('nr')} of kernel.pty.max less kernel.pty.reserve, "
        f"{host_pool()}, which every sandbox and container on the host shares). End sandboxes that hold "
        f"terminals, lower {bounds.variable('ptys')} so that fewer can, or raise kernel.pty.max (sysctl).")


def exhausted(what: str, bound: Optional[int]) -> ResourceExhaustedError:
    """init found no terminal to allocate (ENOSPC) in a sandbox created with `bound` (its record's, None under
    gVisor): the host's pool is used up, or else the sandbox's own bound."""
    if used_up():
        return pool_empty(what)
    if bound is None:  # gVisor's own kernel's terminals
        return ResourceExhaustedError(f"{what}: no terminal left in the sandbox. Close terminals it holds.")
    return ResourceExhaustedError(
        f"{what}: no terminal left. This sandbox's terminals are at most {bound} at once ({bounds.variable('ptys')} "
        "when it was created), every one its processes hold counted. Close terminals the sandbox holds, or "
        "create it with a larger bound.")
