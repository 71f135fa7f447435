"""The wire format of the protocol spoken with sandbox-init (native/common/protocol.h).

Each request is one SOCK_SEQPACKET datagram with its fds attached; replies
come back the same way. The listener lives in the state directory, reachable
only from the host; the runtime makes it (listen), the core's InitClient
(_core/initclient.py) makes every request the public API needs.
"""

from __future__ import annotations

import array
import errno
import os
import resource
import select
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

from . import _aio, bounds, exception

MAGIC = 0x31425350
VERSION = 1
MAX_MESSAGE = 256 * 1024
HEADER = struct.Struct("=IHHI")
EXEC = struct.Struct("=IIII")
EXITED = struct.Struct("=Ii")
OPEN = struct.Struct("=II")  # flags, mode; then the path
FSOP = struct.Struct("=II")  # op, its argument (a directory's mode, a watch's flags); then the path
STAT = struct.Struct("=IIIIQq")  # FSOP_STAT's reply: mode, uid, gid, padding, size, mtime_ns; then a link's target
WATCH_ENTRY = struct.Struct("=i")  # FSOP_WATCH's reply, per watch: its wd, then its path relative to the top
DT_DIR = 4  # FSOP_LIST's reply, per entry: a d_type byte, then the name

REQ_EXEC, REQ_ENTRY_STDIN, REQ_ENTRY_STDIN_CLOSE, REQ_OPEN, REQ_FSOP, REQ_PIDFD = 1, 3, 4, 6, 7, 8  # 2 and 5: retired
REQ_FILE = 9
FILE = struct.Struct("=IIq")  # op, whence, its argument (bytes to read, an offset); then WRITE's data
FILE_READ, FILE_PEEK, FILE_WRITE, FILE_SEEK = 1, 2, 3, 4
FILE_CHUNK = 64 * 1024  # the most one FILE request reads or writes
COUNT = struct.Struct("=q")  # FILE's WRITE and SEEK reply: bytes written, the new offset
FSOP_MKDIR, FSOP_UNLINK, FSOP_RMDIR, FSOP_LIST, FSOP_STAT, FSOP_WATCH = 1, 2, 3, 4, 5, 6
FSOP_TREE = 7  # with a SOCK_STREAM socket: init writes the directory's tree into it (native/common/tree.h)
TREE_RECORD = struct.Struct("=8I2qQ")  # tree.h's struct tree_record: one per entry, and one per file chunk
TREE_CHUNK = 64 * 1024  # the most file data one record carries
WATCH_RECURSIVE = 1
REP_OK, REP_STARTED, REP_EXITED, REP_FD, REP_ERROR = 100, 101, 102, 103, 199
EXIT_CODE, EXIT_SIGNAL, EXIT_TIMEOUT = 0, 1, 2
EXEC_FLAG_PTY = 2  # init makes the terminal inside and relays it; 1 is retired (a host terminal), refused (EINVAL)

_SUN_PATH_MAX = 107
# Plain ints: or-ing the socket module's IntFlag members costs more than the syscall they go with.
_SEQPACKET = int(socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
_RECV_FLAGS = int(socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC)
_TRUNCATED = int(socket.MSG_TRUNC | socket.MSG_CTRUNC)  # ints: IntFlag operators cost a call each
_ANCILLARY = socket.CMSG_SPACE(4 * array.array("i").itemsize)  # room for 4 fds: more is a truncation


class AgentGone(Exception):
    """The sandbox's init is not there (the sandbox finished or never started)."""


class AgentError(Exception):
    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err


def connect(socket_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, _SEQPACKET)
    try:
        _connect(sock, socket_path)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise AgentGone(str(exc)) from None
    except BaseException:
        sock.close()
        raise
    return sock


def _connect(sock: socket.socket, path: Path) -> None:
    address = os.fsencode(path)
    if len(address) <= _SUN_PATH_MAX:
        sock.connect(address)
        return
    # A deep state directory: reach the socket through a short /proc path.
    dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dirfd}/{path.name}".encode())
    finally:
        os.close(dirfd)


def listen(socket_path: Path) -> socket.socket:
    """Create the listener that init will inherit (the caller passes it on as fd 3)."""
    sock = socket.socket(socket.AF_UNIX, _SEQPACKET)
    if len(os.fsencode(socket_path)) <= _SUN_PATH_MAX:
        sock.bind(os.fsencode(socket_path))
    else:
        dirfd = os.open(socket_path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            sock.bind(f"/proc/self/fd/{dirfd}/{socket_path.name}".encode())
        finally:
            os.close(dirfd)
    sock.listen(128)
    return sock


def message(kind: int, body: bytes = b"") -> bytes:
    return HEADER.pack(MAGIC, VERSION, kind, HEADER.size + len(body)) + body


# os.fsencode's codec, looked up once: exec_body encodes all its strings in one call.
_FS_CODEC = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def exec_body(argv: Sequence[str], env: Sequence[str], cwd: str, timeout_ms: int, flags: int = 0) -> bytes:
    # Each string NUL-terminated, the same bytes as os.fsencode(s) + b"\0" each (no string holds a NUL:
    # ExecSpec and the env checks refuse them) for one encode of them all.
    packed = "\0".join([cwd, *argv, *env, ""]).encode(*_FS_CODEC)
    return EXEC.pack(flags, timeout_ms, len(argv), len(env)) + packed


def send(sock: socket.socket, data: bytes, fds: Sequence[int] = ()) -> None:
    try:
        try:
            _send(sock, data, fds)
        except OSError as exc:
            if exc.errno != errno.EMSGSIZE:
                raise
            # Over the default send buffer (wmem_default): only large requests pay for raising it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE + 4096)
            _send(sock, data, fds)
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise AgentGone(str(exc)) from None
    except OSError as exc:
        if exc.errno != errno.ETOOMANYREFS:
            raise
        raise _too_many_in_flight() from None


def _too_many_in_flight() -> exception.ResourceExhaustedError:
    """The kernel refused to pass descriptors: this user's processes hold more in flight on unix sockets than
    this process's soft RLIMIT_NOFILE (a rootless caller's sandboxes run as its own uid: docs/SECURITY.md)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return exception.ResourceExhaustedError(
        f"The kernel refused to pass this request's descriptors (ETOOMANYREFS): processes of this user, a sandbox's "
        f"perhaps, hold more descriptors in flight than this process's soft RLIMIT_NOFILE ({soft}) allows. Raise it "
        f"toward its hard limit ({hard}) with `ulimit -n` or resource.setrlimit, or end what holds them.")


def _send(sock: socket.socket, data: bytes, fds: Sequence[int]) -> None:
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


# The fixed body of each reply kind that has one (REP_ERROR: at least its errno).
_REPLY_BODIES = {REP_STARTED: 4, REP_EXITED: EXITED.size, REP_ERROR: 4}
_REPLY_FDS = {REP_FD: 1}


class Reply:
    __slots__ = ("kind", "body", "fds")

    def __init__(self, kind: int, body: bytes, fds: list) -> None:
        self.kind, self.body, self.fds = kind, body, fds

    def raise_for_error(self) -> "Reply":
        if self.kind == REP_ERROR:
            err = struct.unpack_from("=i", self.body)[0]
            raise AgentError(err, self.body[4:].split(b"\0", 1)[0].decode(errors="replace"))
        return self

    def unpack(self, layout: struct.Struct) -> tuple:
        """The body's leading fields; AgentGone if init sent fewer bytes than they take."""
        if len(self.body) < layout.size:
            raise AgentGone(f"malformed reply from init: {len(self.body)} bytes where {layout.size} are needed")
        return layout.unpack_from(self.body)


class _Buffer(threading.local):
    """Each thread's receive buffer, room for the largest reply: a fresh one per recvmsg
    would cost more than the call (its pages are new each time)."""

    def __init__(self) -> None:
        self.data = bytearray(MAX_MESSAGE)


_buffer = _Buffer()


def try_receive(sock: socket.socket) -> Optional[Reply]:
    """One reply if one is waiting, else None. AgentGone when init hung up or sent
    something that is not a whole, well-formed reply (its fds are closed then)."""
    fds = array.array("i")
    buffer = _buffer.data
    try:
        size, ancdata, flags, _addr = sock.recvmsg_into([buffer], _ANCILLARY, _RECV_FLAGS)
    except BlockingIOError:
        return None
    except ConnectionResetError:
        raise AgentGone("connection reset") from None
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    data = bytes(buffer[:size])
    if not data and not fds:
        raise AgentGone("init closed the connection")
    problem = _malformed(data, flags, len(fds))
    if problem is not None:
        for fd in fds:
            os.close(fd)
        raise AgentGone(f"malformed reply from init: {problem}")
    return Reply(HEADER.unpack_from(data)[2], data[HEADER.size:], list(fds))


def _malformed(data: bytes, flags: int, nfds: int) -> Optional[str]:
    """What is wrong with a reply datagram, or None."""
    if flags & _TRUNCATED:
        return "longer than any reply, or with more fds than any"
    if len(data) < HEADER.size:
        return f"{len(data)} bytes, shorter than a header"
    magic, version, kind, length = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or length != len(data):
        return "bad magic, version or length"
    body = len(data) - HEADER.size
    if body < _REPLY_BODIES.get(kind, 0) or (kind in (REP_STARTED, REP_EXITED) and body != _REPLY_BODIES[kind]):
        return f"a body of {body} bytes for reply {kind}"
    if nfds != _REPLY_FDS.get(kind, 0):
        return f"{nfds} fds with reply {kind}"
    return None


async def receive(sock: socket.socket, timeout: Optional[float] = None) -> Optional[Reply]:
    """The next reply; None only if `timeout` passed first. Waits before it tries: a
    reply is never there as soon as its request went out."""
    while True:
        if not await _aio.readable(sock.fileno(), timeout=timeout):
            return None
        reply = try_receive(sock)
        if reply is not None:
            return reply


async def call(socket_path: Path, kind: int, body: bytes = b"", fds: Sequence[int] = ()) -> Reply:
    """A one-shot request on its own connection."""
    with connect(socket_path) as sock:
        return await request(sock, kind, body, fds)


async def request(sock: socket.socket, kind: int, body: bytes = b"", fds: Sequence[int] = ()) -> Reply:
    """A request on `sock` and its reply (AgentError if init answered with an error)."""
    send(sock, message(kind, body), fds)
    return await reply_to(sock)


async def reply_to(sock: socket.socket) -> Reply:
    """The one reply to the request just sent on `sock` (AgentError if init answered with an error),
    within PYSANDBOX_INIT_REPLY_TIMEOUT: init answers at once, but sandbox code can hold it up (it may
    stop an exec's process before its exec, which init waits for), and a read from the sandbox is
    bounded in time."""
    timeout = bounds.get("init_reply_s")
    reply = await receive(sock, timeout)
    if reply is None:
        raise exception.TimeoutError(f"sandbox-init did not answer within {timeout} s "
                                     f"({bounds.variable('init_reply_s')}): code in the sandbox may be holding it up, "
                                     "e.g. a process it started, stopped before it ran. terminate() the sandbox, or "
                                     "raise the setting.")
    return reply.raise_for_error()


def request_blocking(sock: socket.socket, kind: int, body: bytes, timeout: float) -> Optional[Reply]:
    """As `request`, for a caller outside the event loop; None if no reply came within `timeout` seconds."""
    send(sock, message(kind, body))
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    deadline = time.monotonic() + timeout
    while True:
        if not poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            return None
        reply = try_receive(sock)
        if reply is not None:
            return reply.raise_for_error()
