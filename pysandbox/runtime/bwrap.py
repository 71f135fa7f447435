"""The bubblewrap command line for one sandbox.

Isolation that every sandbox gets, whatever the caller asked for: a user
namespace (sandbox root is an unprivileged host uid, never host root) in
which nested user namespaces are refused twice (bwrap's --disable-userns
and sandbox-init's seccomp filter,
native/seccomp.c, which also refuses mounts and the rest); pid, ipc, uts, net and cgroup namespaces;
every capability dropped and no_new_privs (bwrap does both for an
unprivileged caller); a new session (no TIOCSTI into the caller's terminal);
its own /proc with host-wide files masked, a minimal /dev and a private /tmp;
and death with its parent, so killing the supervisor kills the sandbox.
"""

from __future__ import annotations

import os
from typing import Callable, List, Optional, Sequence

from .confinement import proc_mask_args
from .layout import BIN_DIR, INIT_PATH, Mount, OverlayRoot, RunnerInputs, python_links

ISOLATION = (
    "--unshare-user", "--uid", "0", "--gid", "0", "--disable-userns",
    "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
    "--hostname", "sandbox",
    "--die-with-parent", "--as-pid-1", "--new-session",
)


def mount_args(mount: Mount, source: Callable[[str], str]) -> List[str]:
    if mount.kind in ("ro-bind", "bind"):
        return [f"--{mount.kind}", source(mount.source), mount.dest]
    if mount.kind == "symlink":
        return ["--symlink", mount.source, mount.dest]
    if mount.kind == "mask-file":
        return ["--ro-bind", "/dev/null", mount.dest]
    if mount.kind == "mask-dir":
        return ["--tmpfs", mount.dest]
    raise ValueError(f"unknown mount kind {mount.kind!r}")


def _root(upper: str, disk_bytes: Optional[int], source: Callable[[str], str]) -> List[str]:
    """The writable root: the upper directory, or with a disk limit a tmpfs of that
    size that also holds /tmp, so one limit covers everything the sandbox can write."""
    if disk_bytes is None:
        return ["--bind", source(upper), "/"]
    return ["--size", str(disk_bytes), "--perms", "0755", "--tmpfs", "/"]


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


def command(bwrap: str, inputs: RunnerInputs, network_args: Sequence[str] = ()) -> List[str]:
    """`network_args`: the network plan's (netplan.NetworkPlan.bwrap_args)."""
    source, workdir = inputs.source, inputs.workdir
    root = _root(inputs.upper, inputs.disk_bytes, source) if inputs.overlay is None else \
        overlay_args(inputs.overlay, source)
    argv = [bwrap, *ISOLATION, *([] if inputs.network == "host" else ["--unshare-net"]), *root,
            "--perms", "0700", "--dir", "/root"]
    for name, target in python_links() if inputs.overlay is None else ():
        argv += ["--symlink", target, f"{BIN_DIR}/{name}"]
    if inputs.makes_workdir():
        argv += ["--dir", workdir]  # created in the upper directory when missing
    for mount in inputs.mounts:
        argv += mount_args(mount, source)
    argv += ["--proc", "/proc", *proc_mask_args(), "--dev", "/dev",
             *(["--tmpfs", "/tmp"] if inputs.disk_bytes is None else ["--perms", "1777", "--dir", "/tmp"]),
             *network_args]
    argv += ["--ro-bind", source(inputs.init), INIT_PATH, "--chdir", workdir, "--"]
    return argv + inputs.init_argv()
