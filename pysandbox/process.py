"""ContainerProcess: a process started with Sandbox.exec().

Its stdio are plain pipes whose other ends live in the sandboxed process, so
output flows straight from the sandbox into this process. Its exit status
arrives on the connection that started it, as one EXITED message from init.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import uuid
from typing import Optional

from . import agent
from ._aio import synchronized
from .exception import InvalidError
from .streams import StreamReader, StreamWriter

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


class ContainerProcess:
    """A process running in a sandbox, modelled on asyncio.subprocess.Process."""

    def __init__(
        self, conn: socket.socket, pid: int, stdin_fd: int, stdout: StreamReader, stderr: StreamReader,
        terminal: Optional[int] = None,
    ) -> None:
        self._conn: Optional[socket.socket] = conn
        self._terminal = terminal  # the pty master, with exec(pty=True)
        self._pid = pid
        self._stdout, self._stderr = stdout, stderr
        self._stdin = StreamWriter(stdin_fd)
        self._returncode: Optional[int] = None
        self.process_id = str(uuid.uuid4())

    @property
    def stdout(self) -> StreamReader:
        return self._stdout

    @property
    def stderr(self) -> StreamReader:
        return self._stderr

    @property
    def stdin(self) -> StreamWriter:
        return self._stdin

    def _resize(self, rows: int, cols: int) -> None:
        """Set the terminal's window size (exec(pty=True) only; used by `pysandbox shell`)."""
        if self._terminal is not None:
            fcntl.ioctl(self._terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    @property
    def returncode(self) -> int:
        if self._returncode is None:
            raise InvalidError(
                "You must call wait() before accessing the returncode. "
                "To poll for the status of a running process, use poll() instead."
            )
        return self._returncode

    def _settle(self, code: int) -> int:
        self._returncode = code
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return code

    def _check_reply(self, reply: Optional[agent.Reply]) -> Optional[int]:
        if reply is None:
            return None
        if reply.kind != agent.REP_EXITED:
            raise InvalidError(f"unexpected reply {reply.kind} from sandbox init")
        return self._settle(returncode_of(reply))

    @synchronized
    async def poll(self) -> Optional[int]:
        """The exit code if the process has finished, else None."""
        if self._returncode is not None:
            return self._returncode
        try:
            return self._check_reply(agent.try_receive(self._conn))
        except agent.AgentGone:
            return self._settle(KILLED_RETURNCODE)

    @synchronized
    async def wait(self) -> int:
        """Block until the process exits; its exit code (-1 after an exec timeout)."""
        if self._returncode is not None:
            return self._returncode
        try:
            return self._check_reply(await agent.receive(self._conn))
        except agent.AgentGone:
            return self._settle(KILLED_RETURNCODE)

    def __del__(self) -> None:
        if getattr(self, "_conn", None) is not None:
            self._conn.close()
        if hasattr(self, "_stdin"):
            self._stdin.release()

    def __repr__(self) -> str:
        return f"ContainerProcess(process_id={self.process_id!r})"
