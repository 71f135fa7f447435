"""ContainerProcess: a process started with Sandbox.exec().

Its stdio are plain pipes whose other ends live in the sandboxed process, so
output flows straight from the sandbox into this process. Its exit status
arrives on the connection that started it, as one EXITED message from init.

A handle owns its descriptors: the connection, the stdin write end (in its
StreamWriter) and the stdout/stderr read ends (in their OutputPipes, shared by
the two readers). None refers back to the process, so dropping the handle
closes at once whatever no reader still holds: the process inside then gets
EOF on stdin and EPIPE/SIGPIPE on output nobody will read, as with subprocess.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Dict, Generic, Optional, Sequence

from . import _aio, _fork, agent
from ._aio import synchronized
from ._core.spec import ExecSpec
from ._lazy import LazyModule
from .exception import InvalidError
from .io_streams import _RECHECK_S, LocalStdout, OutputPipes, StreamReader, StreamWriter, T
from .stream_type import StreamType

if TYPE_CHECKING:
    import uuid
else:
    uuid = LazyModule("uuid")  # imported when a process_id is first asked for: few callers ask

EXEC_TIMEOUT_RETURNCODE = -1
KILLED_RETURNCODE = 137  # init is gone: the sandbox ended and took the process with it


def returncode_of(reply: agent.Reply) -> int:
    kind, value = agent.EXITED.unpack_from(reply.body)
    if kind == agent.EXIT_CODE:
        return value
    if kind == agent.EXIT_SIGNAL:
        return 128 + value
    if kind == agent.EXIT_TIMEOUT:
        return EXEC_TIMEOUT_RETURNCODE
    raise InvalidError("Unexpected exit status")


class ContainerProcess(Generic[T]):
    """A process running in a sandbox, modelled on asyncio.subprocess.Process.
    ContainerProcess[str] for exec(text=True) (the default), ContainerProcess[bytes] for text=False."""

    def __init__(
        self, conn: socket.socket, pid: int, stdin: StreamWriter, pipes: OutputPipes, spec: ExecSpec,
        window: Optional[socket.socket] = None, shown: Sequence[LocalStdout] = (),
    ) -> None:
        self._conn: Optional[socket.socket] = conn
        self._pid = pid
        self._stdin = stdin
        self._pipes = pipes
        # What the readers are made of (not the spec itself: its environment may hold secrets).
        self._outputs, self._text = (spec.stdout, spec.stderr), spec.text
        self._by_line = spec.bufsize == 1 and spec.text
        self._readers: Dict[int, StreamReader[T]] = {}  # made on first use: most callers only wait
        self._window = window  # exec(pty=True): the terminal's size goes to init's relay here (_core/exec.py)
        self._shown = shown  # StreamType.STDOUT's copies to our stdout
        self._returncode: Optional[int] = None
        self._owner = _fork.pid
        self._inherited = False
        self._process_id: Optional[str] = None
        _fork.track(self)

    @property
    def process_id(self) -> str:
        """An id of this exec, made when first asked for (few callers ask: an exec need not pay for it)."""
        if self._process_id is None:
            self._process_id = str(uuid.uuid4())
        return self._process_id

    @property
    def stdout(self) -> StreamReader[T]:
        return self._reader(0)

    @property
    def stderr(self) -> StreamReader[T]:
        return self._reader(1)

    def _reader(self, index: int) -> StreamReader[T]:
        reader = self._readers.get(index)
        if reader is None:
            made: StreamReader[T] = StreamReader(
                self._pipes.source(index), index + 1, text=self._text,
                stream_type=StreamType[self._outputs[index].upper()], by_line=self._by_line)
            reader = self._readers.setdefault(index, made)  # atomic: two threads asking get the same one
        return reader

    @property
    def stdin(self) -> StreamWriter:
        return self._stdin

    def _resize(self, rows: int, cols: int) -> None:
        """Set the terminal's window size (exec(pty=True) only; used by `pysandbox shell`)."""
        size = struct.pack("HHHH", rows, cols, 0, 0)
        if self._window is not None:
            try:
                self._window.send(size)
            except OSError:
                pass  # the relay is gone, and with it the terminal

    @property
    def returncode(self) -> int:
        if self._returncode is None:
            raise InvalidError(
                "You must call wait() before accessing the returncode. "
                "To poll for the status of a running process, use poll() instead."
            )
        return self._returncode

    def _check_owner(self) -> None:
        if self._inherited:
            raise _fork.inherited_error("ContainerProcess", self._owner)

    def _settle(self, code: int) -> int:
        """The process has ended: keep its code, let go of what only served it while it ran."""
        self._returncode = code
        self._close_conn()
        if self._window is not None:
            self._window.close()
        self._stdin.release()
        self._pipes.drain_unclaimed()  # takes what is left; a pipe at EOF closes here
        for shown in self._shown:
            shown.flush()  # what it wrote before it ended, shown before wait() returns
        return code

    def _check_reply(self, reply: Optional[agent.Reply]) -> Optional[int]:
        if reply is None:
            return None
        if reply.kind != agent.REP_EXITED:
            raise InvalidError(f"unexpected reply {reply.kind} from sandbox init")
        return self._settle(returncode_of(reply))

    def _receive(self) -> Optional[int]:
        try:
            return self._check_reply(agent.try_receive(self._conn))
        except agent.AgentGone:
            return self._settle(KILLED_RETURNCODE)

    @synchronized
    async def poll(self) -> Optional[int]:
        """The exit code if the process has finished, else None."""
        self._check_owner()
        if self._returncode is not None:
            return self._returncode
        # A process blocked on a full pipe never exits: make room first.
        self._pipes.drain_unclaimed()
        return self._receive()

    @synchronized
    async def wait(self) -> int:
        """Block until the process exits; its exit code (-1 after an exec timeout).
        Output nobody reads meanwhile is kept for later reads, up to the
        `exec_unread_output` bound per stream (docs/ARCHITECTURE.md)."""
        self._check_owner()
        # Waits first, then looks: the process was running a moment ago, so looking first
        # would mostly find nothing. The wait ends at once if a pipe needs draining.
        if self._returncode is not None:
            return self._returncode
        pipes, recheck = self._pipes.unclaimed()
        while self._returncode is None:
            await _aio.readable(self._conn.fileno(), *pipes, timeout=_RECHECK_S if recheck else None)
            pipes, recheck = self._pipes.drain_unclaimed()
            code = self._receive()
            if code is not None:
                return code
        return self._returncode

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _after_fork_in_child(self) -> None:
        self._inherited = True
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def __del__(self) -> None:
        if getattr(self, "_conn", None) is not None:
            self._close_conn()
        window = getattr(self, "_window", None)
        if window is not None:
            window.close()  # exec(pty=True) dropped before it ended: its window socket goes with it

    def __repr__(self) -> str:
        return f"ContainerProcess(process_id={self.process_id!r})"
