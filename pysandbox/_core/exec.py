"""Starting a command in a sandbox: its pipes or terminal, the exec request to init,
and the ContainerProcess that reads and waits for it."""

from __future__ import annotations

import errno
import io
import os
import resource
import socket
import struct
import sys
from pathlib import Path
from typing import Any, List, Optional

from .. import agent, bounds, exception, ptypool
from .._state import records
from ..container_process import ContainerProcess
from ..exception import InvalidError
from ..io_streams import LocalStdout, OutputPipes, StreamWriter
from .spec import ExecSpec


def _output_end(kind: str, shown: List[LocalStdout]):
    """(our read end or None, the end handed to the process) for stdout/stderr (spec.OUTPUTS). A pipe
    starts at the default size: its reader raises stdout's once it fills (io_streams._Pipe). StreamType.STDOUT
    is a pipe too, which a thread of ours copies to our stdout (io_streams.LocalStdout), added to `shown`."""
    if kind == "pipe":
        return os.pipe2(os.O_CLOEXEC)
    if kind == "devnull":
        return None, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    shown.append(LocalStdout())
    return None, shown[-1].write_end


def _pipes(spec: ExecSpec, shown: List[LocalStdout]):
    """(fds for the process's 0, 1, 2; our stdin write end, stdout and stderr read ends; no size socket)."""
    made: List[Optional[int]] = []
    try:
        made += os.pipe2(os.O_CLOEXEC)
        made += _output_end(spec.stdout, shown)
        made += _output_end(spec.stderr, shown)
    except BaseException:
        _close_fds(made)
        raise
    stdin_read, stdin_write, out_read, out_write, err_read, err_write = made
    return (stdin_read, out_write, err_write), (stdin_write, out_read, err_read), None


def _terminal():
    """For a terminal init makes inside the sandbox, from its own devpts, and relays (agent.EXEC_FLAG_PTY): a pipe
    for its input, one for its output (stderr merged, as on Modal), and a socket for its size, which carries the
    first."""
    made: List[Optional[int]] = []
    sockets: List[socket.socket] = []
    try:
        made += os.pipe2(os.O_CLOEXEC)
        made += _output_end("pipe", [])
        sockets += socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        window, theirs = sockets
        window.send(_window_size())
        window.setblocking(False)  # a resize is dropped, never waited for, if the relay lets them pile up
    except BaseException:
        _close_fds(made)
        for sock in sockets:
            sock.close()
        raise
    stdin_read, stdin_write, out_read, out_write = made
    return (stdin_read, out_write, theirs.detach()), (stdin_write, out_read, None), window


def _window_size() -> bytes:
    """This process's terminal size as struct winsize, 24x80 without one."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
        rows, cols = size.lines, size.columns
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        rows, cols = 24, 80
    return struct.pack("HHHH", rows, cols, 0, 0)


async def start_process(socket_path: Path, sandbox_id: str, spec: ExecSpec, pty: bool = False) -> ContainerProcess[Any]:
    """Start `spec` in the sandbox whose init listens on `socket_path`, on pipes or with `pty` on a terminal init
    makes; returns once it runs."""
    flags = agent.EXEC_FLAG_PTY if pty else 0
    env = [f"{k}={v}" for k, v in spec.env.items()]
    timeout_ms = 0 if spec.timeout is None else max(1, int(spec.timeout * 1000))
    request = agent.message(agent.REQ_EXEC, agent.exec_body(spec.args, env, spec.workdir or "", timeout_ms, flags))
    if len(request) > agent.MAX_MESSAGE:
        raise InvalidError(f"exec() arguments and environment take {len(request)} bytes, over the "
                           f"{agent.MAX_MESSAGE} byte limit: pass large data through stdin or a file.")
    keep = bounds.get("exec_unread_output")
    try:
        # (the 3 fds the request carries; our stdin write end, stdout and stderr read ends; the size socket or None)
        shown: List[LocalStdout] = []  # StreamType.STDOUT: their write ends are among child_ends
        child_ends, (stdin_write, out_read, err_read), window = _terminal() if pty else _pipes(spec, shown)
    except OSError as exc:
        raise _out_of_fds(exc) or exc
    # Owned from here on: dropping these closes our ends.
    stdin, pipes = StreamWriter(stdin_write), OutputPipes((out_read, err_read), keep)
    conn = None
    try:
        conn = agent.connect(socket_path)
        agent.send(conn, request, child_ends)
        _close_fds(child_ends)
        child_ends = ()
        reply = await agent.reply_to(conn)
    except BaseException as exc:
        _close_fds(child_ends)
        if conn is not None:
            conn.close()
        if window is not None:
            window.close()
        stdin.release()
        pipes.close_all()
        if isinstance(exc, agent.AgentGone):
            raise await records.finished_error(sandbox_id) from None
        if pty and isinstance(exc, agent.AgentError) and exc.errno == errno.ENOSPC:
            raise ptypool.exhausted(f"Sandbox {sandbox_id} cannot start {spec.args[0]!r} on a terminal",
                                 records.read_record(sandbox_id).ptys_max) from None
        if isinstance(exc, agent.AgentError) and exc.errno in _HELD_BY:
            raise exception.ResourceExhaustedError(
                f"Sandbox {sandbox_id} cannot start {spec.args[0]!r}: {exc}. {_HELD_BY[exc.errno]}") from None
        if isinstance(exc, OSError):
            raise _out_of_fds(exc) or exc
        raise
    pid = int.from_bytes(reply.body[:4], sys.byteorder)
    return ContainerProcess(conn, pid, stdin, pipes, spec, window=window, shown=shown)


# init's refusals for lack of room, and what holds that room.
_HELD_BY = {
    errno.EMFILE: "An exec holds its slot until its ContainerProcess saw it end (wait() or poll()) or was dropped.",
    errno.EAGAIN: "Every process left running in the sandbox counts, whether its ContainerProcess is alive or not.",
}


def _out_of_fds(exc: OSError) -> Optional[Exception]:
    """A clear error for running out of descriptors in this process while starting an exec."""
    if exc.errno == errno.EMFILE:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return exception.ResourceExhaustedError(
            f"exec: this process has used up its file descriptors (RLIMIT_NOFILE soft limit: {soft}). Each exec "
            f"holds up to four (connection, stdin, stdout, stderr) until it has ended and was waited for, read to "
            f"the end or dropped. Keep fewer execs open, or raise the limit (`ulimit -n`, or "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ...) up to the hard limit).")
    if exc.errno == errno.ENFILE:
        return exception.ResourceExhaustedError(
            "exec: the host has run out of file descriptors (its system-wide limit, sysctl fs.file-max).")
    return None


def _close_fds(fds) -> None:
    for fd in set(fds) - {None}:
        os.close(fd)
