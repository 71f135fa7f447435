"""`pysandbox run`, `exec` and `shell`: commands in a new or a running sandbox, their output
streamed and their exit status passed through."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import signal
import struct
import sys
import termios
import tty
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import _modal_alias
from .._state import paths
from ..app import App
from ..exception import Error, SandboxTimeoutError
from ..image import Image
from ..io_streams import FollowSource, StreamReader
from ..sandbox import Sandbox
from ..secret import Secret
from ..volume import Volume
from .common import (
    EXIT_EXEC_TIMEOUT,
    Interrupts,
    UsageError,
    command_of,
    parse_env,
    sandbox_of,
    start,
    stdin_is_tty,
    stream_process,
)

BOOTSTRAP_DIR = str(Path(__file__).resolve().parent.parent / "_bootstrap")  # the sitecustomize of `modal-run`

DEFAULT_RUN_APP = "pysandbox-cli"
DEFAULT_RUN_TIMEOUT = 300
_MEMORY = re.compile(r"(\d+)([kmg]?)b?", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "m": 1, "k": 1 / 1024, "g": 1024}  # in MiB, Modal's unit


# Options of a new sandbox ------------------------------------------------------


def image_of(value: Optional[str]) -> Optional[Image]:
    """--image: `host` (or none), an image id, a Dockerfile (or a directory holding one; its
    directory is the build context, as for `docker build DIR`), else a registry reference."""
    if value in (None, "host"):
        return None
    if value.startswith("im-"):
        return Image.from_id(value)
    if value.startswith(("/", ".", "~")) or os.path.exists(value):
        path = os.path.expanduser(value)
        if os.path.isdir(path):
            path = os.path.join(path, "Dockerfile")
        if not os.path.isfile(path):
            raise UsageError(f"--image {value}: no Dockerfile at {path}")
        return Image.from_dockerfile(path, context_dir=os.path.dirname(os.path.abspath(path)))
    return Image.from_registry(value)


def _request_limit(value: Optional[str], read):
    """Modal's cpu= and memory=: a request, or REQUEST,LIMIT for its (request, limit) tuple."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) > 2:
        parts = [value]  # no reader takes a comma: its error names the whole value
    values = [read(part) for part in parts]
    return values[0] if len(values) == 1 else tuple(values)


def _mib(text: str) -> int:
    match = _MEMORY.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--memory expects MiB (512), a size with a unit (512m, 2g) or REQUEST,LIMIT "
                         f"(256m,1g), got {text!r}")
    return max(1, int(int(match[1]) * _MEMORY_UNITS[match[2].lower()]))


def _cores(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--cpu expects cores (0.5) or REQUEST,LIMIT (0.5,2), got {text!r}") from None


def memory_of(value: Optional[str]):
    """--memory in MiB, as Modal counts it (docker's suffixes, 512m and 2g, are understood too)."""
    return _request_limit(value, _mib)


def cpu_of(value: Optional[str]):
    return _request_limit(value, _cores)


def volumes_of(mounts: Optional[List[str]]) -> Dict[str, Volume]:
    """-v VOLUME:/path[:ro] (repeatable), the volume by name as `pysandbox volume` made it."""
    volumes = {}
    for mount in mounts or ():
        parts = mount.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1] or parts[2:] not in ([], ["ro"], ["rw"]):
            raise UsageError(f"-v expects VOLUME:/path or VOLUME:/path:ro, got {mount!r}")
        volume = Volume.from_name(parts[0])
        volumes[parts[1]] = volume.read_only() if parts[2:] == ["ro"] else volume
    return volumes


def _create_options(args) -> Dict[str, Any]:
    """Sandbox.create's keyword arguments, every one checked before anything starts."""
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.tty and not stdin_is_tty():
        raise UsageError("-t needs a terminal on stdin (drop -t to pipe input)")
    for port in args.port or ():
        if not 1 <= port <= 65535:
            raise UsageError(f"-p expects a port from 1 to 65535, got {port}")
    if args.port and args.block_network:
        raise UsageError("-p cannot be used with --block-network: a tunnel needs the network")
    return dict(
        app=App.lookup(args.app, create_if_missing=True), name=args.name, image=image_of(args.image),
        env=parse_env(args.env) or None, secrets=[Secret.from_name(name) for name in args.secret or ()],
        volumes=volumes_of(args.volume), workdir=args.workdir, cpu=cpu_of(args.cpu), memory=memory_of(args.memory),
        block_network=args.block_network, encrypted_ports=args.port or (),
    )


def _print_tunnels(sb: Sandbox, ports) -> None:
    if ports:
        for port, tunnel in sorted(sb.tunnels().items()):
            print(f"port {port}: {tunnel.url}", file=sys.stderr, flush=True)


# Commands --------------------------------------------------------------------


def cmd_run(args) -> int:
    """As `docker run`: the command (after the image's ENTRYPOINT; none: its CMD) is the sandbox's
    entrypoint, so `pysandbox logs` has its output afterwards and the sandbox ends with it."""
    if not args.command and not args.detach and args.image in (None, "host"):
        command_of(args.command)  # the host image has no command of its own (-d alone: it idles)
    options = _create_options(args)
    with Interrupts() as interrupts:
        if args.detach:
            with interrupts.held():
                sb = Sandbox.create(*args.command, timeout=args.timeout, **options)
                print(sb.object_id, flush=True)
            _print_tunnels(sb, args.port)
            return 0
        sb = None
        try:
            with interrupts.held():  # a stop signal during create ends the sandbox, below
                sb = Sandbox.create(*args.command, timeout=args.timeout, pty=args.tty, **options)
            _print_tunnels(sb, args.port)
            return _attach(_Entrypoint(sb), args.tty, args.interactive)
        finally:
            if sb is not None:
                with interrupts.held(), contextlib.suppress(SandboxTimeoutError):  # its timeout ended it: 124
                    sb.terminate(wait=True)


class _Entrypoint:
    """A sandbox's entrypoint as the process stream_process attaches to: its output files
    followed byte for byte, its stdin, and its exit status (124 when the timeout ended it)."""

    def __init__(self, sb: Sandbox) -> None:
        directory = paths.SandboxDir.of(sb.object_id)
        finished = lambda: sb.returncode is not None  # noqa: E731
        self.stdout = StreamReader(FollowSource(directory.stdout, finished), 1, text=False)
        self.stderr = StreamReader(FollowSource(directory.stderr, finished), 2, text=False)
        self.stdin = sb.stdin
        self._sandbox = sb

    def wait(self) -> int:
        try:
            self._sandbox.wait(raise_on_termination=False)
        except SandboxTimeoutError:
            return EXIT_EXEC_TIMEOUT
        return self._sandbox.returncode


def cmd_exec(args) -> int:
    command = command_of(args.command)
    sb = sandbox_of(args.target, args.app)
    with Interrupts():
        process = sb.exec(*command, timeout=args.timeout, workdir=args.workdir, env=parse_env(args.env), text=False)
        return stream_process(process)


def cmd_shell(args) -> int:
    """A terminal session when our stdin is one; otherwise the program reads our stdin as a pipe,
    so that it ends at our end of input (`pysandbox shell ID < script.sh`)."""
    command = shlex.split(args.cmd)
    if not command:
        raise UsageError("--cmd is empty")
    sb = sandbox_of(args.target, args.app)
    terminal = stdin_is_tty()
    with Interrupts():
        process = sb.exec(*command, pty=terminal, text=False)
        return _attach(process, terminal, interactive=True)


# Attaching our terminal --------------------------------------------------------


def _attach(process, terminal: bool, interactive: bool) -> int:
    """Stream the process; with a terminal, ours is put in raw mode (and restored) and its size
    follows ours. Without -i our stdin is forwarded only if it is not a terminal."""
    if not terminal:
        return stream_process(process, forward_stdin=True if interactive else None)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    resize = getattr(process, "_resize", None)  # window size changes, if the API offers them
    previous_winch = None
    if resize is not None:
        def on_winch(*_):  # the library call runs outside the signal handler
            start(_resize, resize, fd)
        previous_winch = signal.signal(signal.SIGWINCH, on_winch)
        _resize(resize, fd)
    tty.setraw(fd, termios.TCSANOW)  # TCSANOW: keep what was typed ahead
    try:
        return stream_process(process, forward_stdin=True)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if previous_winch is not None:
            signal.signal(signal.SIGWINCH, previous_winch)


def _resize(resize, fd: int) -> None:
    try:
        rows, cols = struct.unpack("hh", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 4))
        if rows > 0 and cols > 0:
            resize(rows, cols)
    except (Error, OSError):
        pass  # a resize that fails leaves the old size: not worth ending the session


def cmd_modal_run(args) -> int:
    """Replace this process with the command, its Python children seeing pysandbox as `modal`:
    the bootstrap directory's sitecustomize (first on PYTHONPATH) calls install_as_modal()."""
    command = command_of(args.command)
    env = dict(os.environ, **{_modal_alias.ENV_FLAG: "1"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (BOOTSTRAP_DIR, env.get("PYTHONPATH")) if p)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise UsageError(f"cannot run {command[0]!r}: {exc.strerror}") from None
