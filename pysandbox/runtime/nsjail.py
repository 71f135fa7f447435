"""The nsjail command line for one sandbox (PYSANDBOX_RUNNER=nsjail), and what it cannot do yet.

The same sandbox as runtime/bwrap.py builds, from the same inputs: the upper
directory as the writable root (nsjail --chroot --rw), the same mounts, its own
read-only /proc with the same masks, a minimal /dev (a tmpfs with the host's
null, zero, full, random, urandom and tty nodes bound in, its own devpts and
bwrap's links), a private /tmp, sandbox root mapped to the sandbox identity,
pid, ipc, uts, net, mount and cgroup namespaces, every capability dropped,
no_new_privs and a new session (nsjail's defaults). sandbox-init runs as pid 1
(-Mo clones it into the new pid namespace) and gets the supervisor's fds 3-6, and
7 with the default network (the handshake of native/netsync.c, as under bwrap).

nsjail's own policies are turned off, because pysandbox already has one for each:
its time limit (the supervisor enforces timeouts), its rlimits (the host's stay,
as under bwrap), its niceness (the caller's stays), its seccomp policy (sandbox-init
installs ours) and its cgroups (none asked for; the supervisor places the runner in
the sandbox's cgroup). The supervisor's PR_SET_PDEATHSIG on nsjail and nsjail's on
its child make the sandbox die with the supervisor. docs/RUNNERS.md lists what
nsjail does not do yet; unsupported() refuses those before any work.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from .. import config
from ..exception import InvalidError
from ..spec import SandboxSpec
from .confinement import proc_masks
from .layout import BIN_DIR, INIT_PATH, SYSTEM_DIRS, Mount, caller_python, python_links

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# bwrap --dev's links, so /dev looks the same under either runner.
DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
             ("/proc/self/fd/2", "/dev/stderr"), ("/proc/kcore", "/dev/core"), ("pts/ptmx", "/dev/ptmx"))
PASSED_FDS = ("3", "4", "5", "6")  # the supervisor's listener, entrypoint output files and event pipe
ISOLATION = (
    "-Mo", "--quiet", "--hostname", "sandbox", "--time_limit", "0", "--disable_rlimits",
    "--keep_env", *(arg for fd in PASSED_FDS for arg in ("--pass_fd", fd)),
)


def check(spec: SandboxSpec, image: object) -> None:
    """Refuse, before any work, what the nsjail runner cannot do yet (docs/RUNNERS.md)."""
    refused = [  # (asked for, what, how to do without)
        (image is not None, "image= (overlay roots)", "leave it out to use the host image"),
        (spec.resources.ephemeral_disk is not None, "ephemeral_disk=", "leave it out"),
    ]
    for asked, what, fix in refused:
        if asked:
            raise InvalidError(f"The nsjail runner does not support {what} yet: {fix}, or use the bwrap runner "
                               "(unset PYSANDBOX_RUNNER). See docs/RUNNERS.md.")
    config.nsjail_binary()
    for what, path in (("PYSANDBOX_HOME", str(config.state_dir())), ("the Python prefix", caller_python()[0])):
        _check_path(what, path)


def _check_path(what: str, path: str) -> None:
    """nsjail's mount options are `source:dest`: a path with a colon cannot be expressed."""
    if ":" in path:
        raise InvalidError(f"The nsjail runner cannot mount {what} {path!r}: nsjail separates paths with ':'. "
                           "Use a path without ':', or the bwrap runner (unset PYSANDBOX_RUNNER).")


def mount_args(mount: Mount, source: Callable[[str], str]) -> List[str]:
    _check_path("the mount point", mount.dest)
    if mount.kind == "ro-bind":
        return ["--bindmount_ro", f"{source(mount.source)}:{mount.dest}"]
    if mount.kind == "bind":
        return ["--bindmount", f"{source(mount.source)}:{mount.dest}"]
    if mount.kind == "symlink":
        return ["--symlink", f"{mount.source}:{mount.dest}"]
    if mount.kind == "mask-file":
        return ["--bindmount_ro", f"/dev/null:{mount.dest}"]
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
def proc_args() -> Tuple[str, ...]:
    """/proc read-only, masked like bwrap's runner masks it. Mounted here rather than by
    nsjail's own /proc, which comes after every other mount and would cover the masks."""
    argv = ["--disable_proc", "--mount", "none:/proc:proc:ro"]
    for path, is_dir in proc_masks():
        argv += ["--mount", f"none:{path}:tmpfs:ro,mode=755"] if is_dir else ["--bindmount_ro", f"/dev/null:{path}"]
    return tuple(argv)


def prepare_upper(upper: Path, workdir: str, owner: Tuple[int, int]) -> None:
    """What bwrap's --perms 0700 --dir /root and --dir WORKDIR make: nsjail makes no directories but mount points."""
    paths = [upper / "root"]
    if workdir.strip("/").split("/")[0] not in SYSTEM_DIRS:
        parts = Path(workdir).relative_to("/").parts
        paths += [upper.joinpath(*parts[:i]) for i in range(1, len(parts) + 1)]
    for path in paths:
        if not path.exists():
            path.mkdir(mode=0o700 if path == upper / "root" else 0o755)
            if os.geteuid() == 0:
                os.chown(path, *owner)


def command(
    nsjail: str,
    *,
    upper: str,
    mounts: Sequence[Mount],
    init: str,
    workdir: str,
    entrypoint: Sequence[str],
    idle_timeout_ms: Optional[int],
    owner: Tuple[int, int],
    pty: bool = False,
    network: str = "none",
    source: Callable[[str], str] = lambda path: path,
    probe: Optional[Tuple[str, str]] = None,
    network_args: Sequence[str] = (),
) -> List[str]:
    """`owner`: the host (uid, gid) nsjail runs as, which sandbox root maps to; `probe`:
    (host binary, sandbox path) of the readiness probe, if any; `network_args`: the
    network plan's (netplan.NetworkPlan.nsjail_args), mounted after `mounts`."""
    uid, gid = owner
    argv = [nsjail, *ISOLATION, "--user", f"0:{uid}:1", "--group", f"0:{gid}:1",
            "--nice_level", str(os.getpriority(os.PRIO_PROCESS, 0)),
            *(["--disable_clone_newnet"] if network == "host" else []),
            "--chroot", source(upper), "--rw", "--cwd", workdir]
    for name, target in python_links():
        argv += ["--symlink", f"{target}:{BIN_DIR}/{name}"]
    for mount in mounts:
        argv += mount_args(mount, source)
    argv += [*network_args, *proc_args(), *dev_args(), "--mount", "none:/tmp:tmpfs:mode=755"]
    if probe is not None:
        argv += ["--bindmount_ro", f"{source(probe[0])}:{probe[1]}"]
    argv += ["--bindmount_ro", f"{source(init)}:{INIT_PATH}", "--", INIT_PATH]
    if idle_timeout_ms is not None:
        argv += ["--idle-timeout-ms", str(idle_timeout_ms)]
    if pty:
        argv += ["--pty"]
    return argv + ["--", *entrypoint]
