"""The filesystem a sandbox sees, as a list of mounts over its writable root.

The host image: the host's system directories read-only, the host's secrets
masked, the caller's Python (base prefix only, never its virtualenv)
read-only at its own path, and everything else (/, /root, /repo, ...) in the
sandbox's private upper directory, which is deleted at terminate.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Callable, FrozenSet, Iterable, List, Optional, Sequence, Tuple

import attrs

from .. import bounds, settings
from .._core.spec import BASE_ENV
from .._state.files import ensure_dir, write_atomic
from ..exception import InvalidError

SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
# Host secrets that stay invisible even though /etc is shared read-only.
MASKED_FILES = ("etc/shadow", "etc/shadow-", "etc/gshadow", "etc/gshadow-", "etc/sudoers", "etc/security/opasswd")
MASKED_DIRS = ("etc/ssh", "etc/sudoers.d", "etc/ssl/private", "etc/polkit-1/localauthority")
BIN_DIR = "/__pysandbox/bin"
VENV_CFG_PATH = "/__pysandbox/pyvenv.cfg"  # makes BIN_DIR's python a virtualenv's (clean_python_mounts)
INIT_PATH = "/__pysandbox/init"
# Where the supervisor, as root, makes host paths reachable (and an image root, for a runner that needs one
# ready-made), in a mount namespace of the runner's alone (native/supervisor/stage.h).
STAGE_DIR = "/run/pysandbox-stage"
STAGED_ROOT = f"{STAGE_DIR}/root"  # stage.h's STAGE_OVERLAY_NAME
DEV_BYTES = 64 << 10  # /dev holds only device nodes, links and mount points
# What sandbox root may do in its own user namespace: Docker's default capabilities, so su,
# setpriv, apt's drop to _apt, chown and services that drop privileges work. The rest (mounts,
# namespaces, ptrace of init, the network's filter) stays out of reach, and nothing here reaches
# a file or process the namespace does not map. Less Docker's NET_RAW: the egress filter sits in
# the sandbox's own namespace, where a packet socket's frames would pass beside it (Modal's gVisor
# gives no raw sockets either); ping works through ICMP datagram sockets (netns.c).
SANDBOX_ROOT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "SETGID", "SETUID",
                     "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")


@attrs.frozen
class Mount:
    kind: str  # bind | ro-bind | symlink | mask-file | mask-dir
    source: str
    dest: str


@attrs.frozen
class OverlayRoot:
    """An image root: `lowers` (layer directories, bottom first) under `upper`/rootfs,
    with overlayfs's `upper`/work beside it (both on one mount, as overlayfs requires).
    `upper` is the sandbox's own upper directory, so --cleanup removes both."""

    lowers: Tuple[str, ...]
    upper: str


def _absolute(_instance, attribute, value) -> None:
    if not value.startswith("/"):
        raise ValueError(f"{attribute.name} must be an absolute path, got {value!r}")


@attrs.frozen
class RunnerInputs:
    """What either runner's command line is built from (runtime/bwrap.py, runtime/nsjail.py).
    Host paths go through `source()`, which lets the launcher substitute staged paths when
    the sandbox identity cannot reach the originals."""

    upper: str = attrs.field(validator=_absolute)  # the sandbox's writable root on the host
    mounts: Tuple[Mount, ...] = attrs.field(converter=tuple)
    init: str = attrs.field(validator=_absolute)  # sandbox-init on the host
    workdir: str = attrs.field(validator=_absolute)
    idle_timeout_ms: Optional[int] = None
    pty: bool = False
    # "default": connected by the supervisor's network helper; "none": loopback only (netplan.py).
    network: str = attrs.field(default="none", validator=attrs.validators.in_(("default", "none")))
    source: Callable[[str], str] = lambda path: path
    disk_bytes: Optional[int] = None  # a tmpfs root of this size, /tmp included; None: `upper` on disk
    overlay: Optional[OverlayRoot] = None  # an image's layers; None: the host image
    tmp_bytes: int = 1 << 30  # /tmp, a tmpfs of its own when the root is not one (sizes.py)
    shm_bytes: int = 64 << 20  # /dev/shm
    ptys_max: int = bounds.BOUNDS["ptys"].default  # the devpts's max= (runtime/ptys.py)
    # On init's command line, so the runner's names the sandbox (runtime/reconcile._kill_strays).
    sandbox_id: str = "sb-unknown"
    # Where a path of the sandbox lies in its root, for the mount points a runner makes: an
    # image's symlinks resolved inside the image (launch: _overlay.LayerView), never on the host.
    dest: Callable[[str], str] = lambda path: path

    def init_argv(self, options: Sequence[str] = ()) -> List[str]:
        """sandbox-init's command line in the sandbox, `options` first. The entrypoint and the
        environment are not on it: they travel in init's configuration (runtime/initconfig.py)."""
        argv = [INIT_PATH, "--sandbox", self.sandbox_id, *options]
        if self.idle_timeout_ms is not None:
            argv += ["--idle-timeout-ms", str(self.idle_timeout_ms)]
        if self.pty:
            argv += ["--pty"]
        return argv

    def makes_workdir(self) -> bool:
        """Whether the working directory is made in the writable root (the host image's
        system directories are mounted, so a workdir there must exist already)."""
        return self.overlay is not None or self.disk_bytes is not None or \
            self.workdir.strip("/").split("/")[0] not in SYSTEM_DIRS

    def init_dirs(self) -> List[str]:
        """sandbox-init's --dir, --chmod and --chdir (at most six): /root (0700), /tmp in a sized root and the
        working directory, made inside the sandbox once its root is in place, where a symlink an
        image or a volume holds leads only into the sandbox's own tree (a runner would follow it
        on the host). The host image's /root is a mount point's parent, made 0755 by the runner."""
        argv = ["--dir", "0700", "/root", *([] if self.overlay is not None else ["--chmod", "0700", "/root"])]
        if self.disk_bytes is not None:  # a mount point in /tmp made it first, 0755 as runners make parents
            tmp_mounts = any(mount.dest.startswith("/tmp/") for mount in self.mounts)
            argv += ["--dir", "1777", "/tmp", *(["--chmod", "1777", "/tmp"] if tmp_mounts else [])]
        if self.makes_workdir():
            argv += ["--dir", "0755", self.workdir]
        return argv + ["--chdir", self.workdir]


def _strings(items: Iterable[str]) -> Tuple[str, ...]:
    """A typed converter: with `tuple` itself, mypy's attrs plugin rejects every argv once a field follows config."""
    return tuple(items)


@attrs.frozen
class RunnerCommand:
    """What a runner module's command() gives (runtime/runners.py): the runner's command line,
    its binary first and sandbox-init's command line last, and the configuration the runner
    reads from fds.RUNNER_CONFIG, if it takes one (nsjail; None for bwrap). `self_isolating`:
    the runner makes every namespace itself and passes init only its stdio (gVisor's runsc): the
    supervisor runs it as the caller, with no user namespace of its own, and hands init its fds
    and connections over the runner's stdin (--handoff, native/common/handoff.h)."""

    argv: Tuple[str, ...] = attrs.field(converter=_strings)
    config: Optional[bytes] = None
    self_isolating: bool = False
    # The runner serves the network namespace's links with a TCP/IP stack of its own (gVisor's netstack):
    # it joins the namespace as the caller once connected, and the egress filter sits on the link.
    own_netstack: bool = False
    # overlayfs's options for an image root the supervisor mounts at STAGED_ROOT before it starts the runner
    # (a runner that takes its root as a directory: gVisor's runsc); None: the runner lays out the root itself.
    stage_overlay: Optional[str] = None
    # or tmpfs's, for a host-image root of disk_bytes the runner cannot size itself (gVisor's runsc).
    stage_tmpfs: Optional[str] = None
    # A self-isolating runner run in the sandbox's user namespace as its root (gVisor's runsc for an
    # unprivileged caller): the user namespaces it makes below that one (userns.h), and the stage its root is
    # mounted in there (a directory of the sandbox's, the supervisor makes and removes). None: run as root.
    nested_userns: Optional[int] = None
    stage: Optional[str] = None


def overlay_options(root: OverlayRoot, source: Callable[[str], str], runner: str) -> str:
    """overlayfs's mount options for `root` (its layers top first, as overlayfs lists them), `userxattr` as the
    layers were built (in a user namespace); `runner` names who mounts it in the error."""
    lowers = ":".join(_option_path(source(lower), runner) for lower in reversed(root.lowers))
    top = _option_path(source(root.upper), runner)
    return f"lowerdir={lowers},upperdir={top}/rootfs,workdir={top}/work,userxattr"


def _option_path(path: str, runner: str) -> str:
    """overlayfs separates its options with ',' and its layers with ':'."""
    if "," in path or ":" in path:
        raise InvalidError(f"The {runner} runner cannot lay out an image from {path!r}: overlayfs options cannot "
                           "hold ',' or ':'. Move PYSANDBOX_HOME to a path without them, or use the bwrap runner.")
    return path


@functools.lru_cache(maxsize=None)
def host_system_mounts(reader: Tuple[int, FrozenSet[int]], host_root: str = "/") -> Tuple[Mount, ...]:
    """System directories, plus masks over the secrets that `reader` (the sandbox's
    host uid and groups) could read. The others stay unreadable through their own
    permissions, and each mask costs two mount calls at every start."""
    mounts = []
    for name in SYSTEM_DIRS:
        path = os.path.join(host_root, name)
        if os.path.islink(path):
            mounts.append(Mount("symlink", os.readlink(path), "/" + name))
        elif os.path.isdir(path):
            mounts.append(Mount("ro-bind", path, "/" + name))
    for rel in MASKED_FILES + MASKED_DIRS:
        path = os.path.join(host_root, rel)
        if _readable_by(path, *reader):
            mounts.append(Mount("mask-dir" if os.path.isdir(path) else "mask-file", "/dev/null", "/" + rel))
    return tuple(mounts)


def _readable_by(path: str, uid: int, gids: FrozenSet[int]) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IRUSR)
    if info.st_gid in gids:
        return bool(info.st_mode & stat.S_IRGRP)
    return bool(info.st_mode & stat.S_IROTH)


@functools.lru_cache(maxsize=None)
def caller_python() -> Tuple[str, str]:
    """(base prefix, real interpreter path) of the calling Python, outside any venv."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return os.path.realpath(sys.base_prefix), executable


@functools.lru_cache(maxsize=None)
def python_mounts() -> Tuple[Mount, ...]:
    """The caller's Python, if it lives outside the shared system directories."""
    prefix, _ = caller_python()
    top = Path(prefix).parts[1] if len(Path(prefix).parts) > 1 else ""
    if top in SYSTEM_DIRS:
        return ()
    return (Mount("ro-bind", prefix, prefix),)


def clean_python_mounts() -> Tuple[Mount, ...]:
    """A pyvenv.cfg beside BIN_DIR, so `python` there starts as a fresh virtualenv over the caller's
    Python: sandboxed code does not import what the caller's interpreter has installed (its
    site-packages), unless PYSANDBOX_HOST_SITE_PACKAGES=1 asks for it. `python -m venv` and its
    ensurepip still work. One file per interpreter, written once to the state directory."""
    if settings.host_site_packages():
        return ()
    name, text = _venv_cfg()
    path = os.path.join(settings.state_dir(), "python", name)
    if not os.path.exists(path):
        ensure_dir(Path(path).parent, 0o755)
        write_atomic(Path(path), text, durable=False)  # rewritten if a crash lost it
    return (Mount("ro-bind", path, VENV_CFG_PATH),)


@functools.lru_cache(maxsize=None)
def _venv_cfg() -> Tuple[str, bytes]:
    """(file name, contents) of clean_python_mounts' pyvenv.cfg: the calling interpreter's, the same for
    the whole process (the state directory it goes in is looked up on every create)."""
    _, executable = caller_python()
    text = (f"home = {os.path.dirname(executable)}\ninclude-system-site-packages = false\n"
            f"version = {'.'.join(map(str, sys.version_info[:3]))}\n").encode()
    return f"{hashlib.sha256(text).hexdigest()[:16]}.cfg", text


def host_read_only_dirs() -> Tuple[str, ...]:
    """Where the host image shares the host's own directories read-only (a runner cannot make
    a mount point in them): the system directories and the caller's Python."""
    return (*("/" + name for name in SYSTEM_DIRS), *(mount.dest for mount in python_mounts()))


def python_links() -> List[Tuple[str, str]]:
    """(link name, target) for `python` and `python3` in BIN_DIR."""
    _, executable = caller_python()
    return [("python", executable), ("python3", executable)]


def default_env() -> dict:
    """The host image's environment: BASE_ENV, with pysandbox's bin directory and the caller's Python on PATH."""
    prefix, _ = caller_python()
    path = f"{BIN_DIR}:{prefix}/bin:{BASE_ENV['PATH']}" if python_mounts() else f"{BIN_DIR}:{BASE_ENV['PATH']}"
    return {**BASE_ENV, "PATH": path}
