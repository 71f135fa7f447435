"""What the subcommands share: parsing KEY=VALUE and id-or-name arguments, streaming a
process's output, and turning SIGTERM and SIGHUP into the clean exit Ctrl-C gives."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from ..container_process import EXEC_TIMEOUT_RETURNCODE
from ..exception import Error
from ..sandbox import Sandbox

PROG = "pysandbox"
EXIT_EXEC_TIMEOUT = 124
ERROR_MAX = 2000  # characters of an error line
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but \t and \n, DEL, C1
_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1


class UsageError(Exception):
    """A command line that cannot work; reported like any other error."""


class Stopped(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: unwind (ending what we started) and exit 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupts:
    """The stop signals as a Stopped exception in the main thread, except inside `held()`:
    there (creating, terminating) one is kept until the block ends, so that a sandbox is never
    half made or half ended because a signal cut the call short."""

    def __init__(self) -> None:
        self._holding = 0
        self._pending: Optional[int] = None
        self._previous = {}

    def __enter__(self) -> "Interrupts":
        for signum in _STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame) -> None:
        if self._holding:
            self._pending = self._pending or signum
        else:
            raise Stopped(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding and self._pending is not None:
            signum, self._pending = self._pending, None
            raise Stopped(signum)


def parse_env(pairs: Optional[Sequence[str]], option: str = "-e") -> Dict[str, str]:
    """KEY=VALUE pairs, as `option` (named in the error) takes them."""
    env = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def command_of(words: Sequence[str]) -> List[str]:
    if not words:
        raise UsageError("no command given: put it after `--`, e.g. `-- ls -l`")
    return list(words)


def sandbox_of(target: str, app: Optional[str], include_terminated: bool = False) -> Sandbox:
    """The sandbox an ID|NAME argument names: an sb- id, or the name of a running sandbox of --app
    (with include_terminated, of the latest one if none runs)."""
    if target.startswith("sb-"):
        return Sandbox.from_id(target)
    if app is None:
        raise UsageError(f"{target!r} is not a sandbox id, so it is taken as a sandbox name: "
                         "pass --app APP to say which app it belongs to")
    return Sandbox.from_name(app, target, include_terminated=include_terminated)


def escape(text: str) -> str:
    """Control characters (escape sequences included) as visible \\xNN, so printed text cannot move
    the cursor, retitle or clear the terminal; tabs and newlines stay."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def escape_name(name: str) -> str:
    """A file name a sandbox chose, on one line: every control character (tab and newline too) as \\xNN,
    and bytes that are not UTF-8 (os.fsdecode's surrogates) as \\xNN, so a name can neither reprogram
    the terminal nor pass for more than one line of a listing."""
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _NAME_CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", name)


def one_line(exc: BaseException) -> str:
    """An error as one line, escaped and bounded: its message may quote what a sandbox wrote
    (a failed sandbox's last supervisor log line, a path in its storage)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    text = escape(text)
    return text if len(text) <= ERROR_MAX else text[:ERROR_MAX] + f"... ({len(text) - ERROR_MAX} more characters)"


# Streaming -------------------------------------------------------------------


def silence(out) -> None:
    """Our reader went away (`| head`): further writes go nowhere, so pumps keep draining."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, out.fileno())
    os.close(devnull)


def _pump(chunks, out, errors: List[BaseException]) -> None:
    """Write every chunk of a StreamReader to `out` as it arrives. If our own
    output is closed (`| head`), keep draining so the process is never blocked."""
    try:
        for chunk in chunks:
            try:
                out.write(chunk)
                out.flush()
            except BrokenPipeError:
                silence(out)
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)


def start(target: Callable, *args) -> threading.Thread:
    """A daemon thread: after Ctrl-C we exit even if the sandboxed process still runs."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _forward_stdin(writer) -> None:
    """Copy our stdin to the process's until EOF, then close it."""
    try:
        fd = sys.stdin.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            writer.write(data)
            writer.drain()
        writer.write_eof()
        writer.drain()
    except (Error, OSError, ValueError):
        pass  # the process is gone or closed its stdin: nothing left to forward to


def stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and os.isatty(sys.stdin.fileno())
    except (OSError, ValueError):
        return False


def stream_process(process, forward_stdin: Optional[bool] = None) -> int:
    """Stream a bytes-mode process's stdout and stderr to ours, feed it our stdin
    (by default unless that is a terminal: then it gets EOF), and return its exit status."""
    if forward_stdin is None:
        forward_stdin = sys.stdin is not None and not stdin_is_tty()
    errors: List[BaseException] = []
    pumps = [start(_pump, process.stdout, sys.stdout.buffer, errors),
             start(_pump, process.stderr, sys.stderr.buffer, errors)]
    if forward_stdin:
        start(_forward_stdin, process.stdin)
    else:
        process.stdin.write_eof()
        process.stdin.drain()
    code = process.wait()
    for thread in pumps:
        thread.join()
    if errors:
        raise errors[0]
    return EXIT_EXEC_TIMEOUT if code == EXEC_TIMEOUT_RETURNCODE else code
