"""The nsjail command line for one sandbox (docs/RUNNERS.md: how it is chosen, what differs).

The same sandbox as runtime/bwrap.py builds, from the same inputs: the writable root
(the upper directory, nsjail --chroot --rw; a sized tmpfs with ephemeral_disk=; or, for
an image, overlayfs of its layers under the upper directory, which nsjail mounts as /),
the same mounts, its own read-only /proc with the same masks, a minimal /dev (a tmpfs
with the host's null, zero, full, random, urandom and tty nodes bound in, its own devpts
and bwrap's links), a private /tmp, sandbox root mapped to the sandbox identity, pid,
ipc, uts, net, mount and cgroup namespaces, every capability dropped, no_new_privs and a
new session (nsjail's defaults). sandbox-init runs as pid 1 (-Mo clones it into the new
pid namespace), makes the directories nsjail does not (/root, the working directory) and
gets the supervisor's fds 3-6 and 8, and 7 with the default network (native/fds.h).

nsjail's own policies are turned off, because pysandbox already has one for each:
its time limit (the supervisor enforces timeouts), its rlimits (the host's stay,
as under bwrap), its niceness (the caller's stays), its seccomp policy (sandbox-init
installs ours) and its cgroups (none asked for; the supervisor places the runner in
the sandbox's cgroup). The supervisor's PR_SET_PDEATHSIG on nsjail and nsjail's on
its child make the sandbox die with the supervisor.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, List, Optional, Sequence, Tuple

from .. import config
from ..exception import InvalidError
from . import fds
from .confinement import proc_masks
from .layout import BIN_DIR, INIT_PATH, Mount, OverlayRoot, RunnerInputs, caller_python, python_links

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# bwrap --dev's links, so /dev looks the same under either runner.
DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
             ("/proc/self/fd/2", "/dev/stderr"), ("/proc/kcore", "/dev/core"), ("pts/ptmx", "/dev/ptmx"))
# The supervisor's listener, entrypoint output pipes, event pipe and init's configuration.
PASSED_FDS = (fds.LISTEN, fds.ENTRY_OUT, fds.ENTRY_ERR, fds.EVENT, fds.INIT_CONFIG)
ISOLATION = (
    "-Mo", "--quiet", "--hostname", "sandbox", "--time_limit", "0", "--disable_rlimits",
    *(arg for fd in PASSED_FDS for arg in ("--pass_fd", str(fd))),
)


def check() -> None:
    """Refuse, before any work, what the nsjail runner cannot express (docs/RUNNERS.md)."""
    config.nsjail_binary()
    for what, path in (("PYSANDBOX_HOME", str(config.state_dir())), ("the Python prefix", caller_python()[0])):
        _check_path(what, path)


def _check_path(what: str, path: str) -> None:
    """nsjail's mount options are `source:dest`: a path with a colon cannot be expressed."""
    if ":" in path:
        raise InvalidError(f"The nsjail runner cannot mount {what} {path!r}: nsjail separates paths with ':'. "
                           "Use a path without ':', or the bwrap runner (unset PYSANDBOX_RUNNER).")


def mask_file() -> str:
    """An empty file nobody may open (mode 000), bound read-only over the files to mask:
    opening one fails with EACCES, as bwrap's nodev /dev/null does (nsjail's command line
    binds without nodev, and /dev/null would read as empty)."""
    path = config.state_dir() / "masked"
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    except FileExistsError:
        pass
    return str(path)


def mount_args(mount: Mount, source: Callable[[str], str], mask: str = "/dev/null") -> List[str]:
    """`mask`: what masks a file (mask_file(), already through `source`)."""
    _check_path("the mount point", mount.dest)
    if mount.kind == "ro-bind":
        return ["--bindmount_ro", f"{source(mount.source)}:{mount.dest}"]
    if mount.kind == "bind":
        return ["--bindmount", f"{source(mount.source)}:{mount.dest}"]
    if mount.kind == "symlink":
        return ["--symlink", f"{mount.source}:{mount.dest}"]
    if mount.kind == "mask-file":
        return ["--bindmount_ro", f"{mask}:{mount.dest}"]
    if mount.kind == "mask-dir":
        return ["--mount", f"none:{mount.dest}:tmpfs:mode=755"]
    raise ValueError(f"unknown mount kind {mount.kind!r}")


def dev_args() -> List[str]:
    argv = ["--mount", "none:/dev:tmpfs:mode=755"]
    for name in DEVICES:
        argv += ["--bindmount", f"/dev/{name}:/dev/{name}"]
    argv += ["--mount", "none:/dev/pts:devpts:newinstance,ptmxmode=0666,mode=620", "--mount", "none:/dev/shm:tmpfs:mode=755"]
    for target, link in DEV_LINKS:
        argv += ["--symlink", f"{target}:{link}"]
    return argv


@functools.lru_cache(maxsize=None)
def proc_args(mask: str = "/dev/null") -> Tuple[str, ...]:
    """/proc read-only, masked like bwrap's runner masks it. Mounted here rather than by
    nsjail's own /proc, which comes after every other mount and would cover the masks."""
    argv = ["--disable_proc", "--mount", "none:/proc:proc:ro"]
    for path, is_dir in proc_masks():
        argv += ["--mount", f"none:{path}:tmpfs:ro,mode=755"] if is_dir else ["--bindmount_ro", f"{mask}:{path}"]
    return tuple(argv)


def root_args(upper: str, source: Callable[[str], str], disk_bytes: Optional[int],
              overlay: Optional[OverlayRoot]) -> List[str]:
    """The writable root, as bwrap.command() makes it: the upper directory; or a tmpfs of
    `disk_bytes`; or overlayfs with the image's layers (top first, as overlayfs lists them)
    under the upper directory, mounted by nsjail in the sandbox's user namespace."""
    if overlay is not None and overlay.lowers:
        lowers = ":".join(_option_path(source(lower)) for lower in reversed(overlay.lowers))
        top = _option_path(source(overlay.upper))
        return ["--mount", f"none:/:overlay:lowerdir={lowers},upperdir={top}/rootfs,workdir={top}/work,userxattr"]
    if overlay is not None:  # an empty image: nothing to lay over
        return ["--chroot", f"{source(overlay.upper)}/rootfs", "--rw"]
    if disk_bytes is not None:
        return ["--mount", f"none:/:tmpfs:size={disk_bytes},mode=755"]
    return ["--chroot", source(upper), "--rw"]


def _option_path(path: str) -> str:
    """overlayfs separates its options with ',' and its layers with ':'."""
    if "," in path or ":" in path:
        raise InvalidError(f"The nsjail runner cannot lay out an image from {path!r}: overlayfs options cannot "
                           "hold ',' or ':'. Move PYSANDBOX_HOME to a path without them, or use the bwrap runner.")
    return path


def init_dirs(inputs: RunnerInputs) -> List[str]:
    """sandbox-init's --dir, --chmod and --chdir: what bwrap's --perms 0700 --dir /root,
    --dir WORKDIR and --chdir do (nsjail makes mount points only, 0755, /root among them when
    the caller's Python is below it); with a disk limit /tmp is a directory of the sized root,
    as under bwrap."""
    argv = ["--dir", "0700", "/root", *([] if inputs.overlay is not None else ["--chmod", "0700", "/root"])]
    argv += ["--dir", "1777", "/tmp"] if inputs.disk_bytes is not None else []
    if inputs.makes_workdir():
        argv += ["--dir", "0755", inputs.workdir]
    return argv + ["--chdir", inputs.workdir]


def command(nsjail: str, inputs: RunnerInputs, owner: Tuple[int, int], network_args: Sequence[str] = (),
            probe: Optional[Tuple[str, str]] = None, mask: str = "/dev/null") -> List[str]:
    """`owner`: the host (uid, gid) nsjail runs as, which sandbox root maps to; `network_args`:
    the network plan's (netplan.NetworkPlan.nsjail_args), mounted after the mounts; `probe`:
    (host binary, sandbox path) of the readiness probe, if any; `mask`: mask_file()."""
    uid, gid = owner
    source = inputs.source
    mask = source(mask)
    argv = [nsjail, *ISOLATION, "--user", f"0:{uid}:1", "--group", f"0:{gid}:1",
            "--nice_level", str(os.getpriority(os.PRIO_PROCESS, 0)),
            *(["--disable_clone_newnet"] if inputs.network == "host" else []),
            *root_args(inputs.upper, source, inputs.disk_bytes, inputs.overlay), "--cwd", "/"]
    for name, target in python_links() if inputs.overlay is None else ():
        argv += ["--symlink", f"{target}:{BIN_DIR}/{name}"]
    for mount in inputs.mounts:
        argv += mount_args(mount, source, mask)
    argv += [*network_args, *proc_args(mask), *dev_args()]
    if inputs.disk_bytes is None:
        argv += ["--mount", "none:/tmp:tmpfs:mode=755"]
    if probe is not None:
        argv += ["--bindmount_ro", f"{source(probe[0])}:{probe[1]}"]
    argv += ["--bindmount_ro", f"{source(inputs.init)}:{INIT_PATH}", "--"]
    return argv + inputs.init_argv(init_dirs(inputs))
