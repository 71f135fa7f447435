"""The host's side of one sandbox's init: every request the public API makes.

The API calls these methods and never sees the wire format (agent.py). Each
request runs on a connection of its own (an exec keeps its connection for the
EXITED reply). Init resolves every path inside the sandbox, as the sandbox's
user, and answers with an errno or with descriptors: an errno becomes Modal
1.5's OSError subclass (fserrors.py), a vanished init the sandbox's end
(records.finished_error, a ConflictError).
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import socket
import stat as stat_module
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .. import agent
from .._state import records
from ..container_process import ContainerProcess
from ..exception import ConflictError, InvalidError
from .exec import start_process
from .filerelay import RelayFile
from .fserrors import os_error
from .spec import ExecSpec

# What each request that init answers with a descriptor serves: under the gVisor runner init refuses them
# (EPROTONOSUPPORT, native/init/init_handoff.h), as gVisor hands no descriptor out of the sandbox. OPEN,
# ENTRY_STDIN and FSOP_WATCH are not among them: init relays those instead, as it does an exec's terminal (exec).
_NEEDS_A_DESCRIPTOR = {
    agent.REQ_PIDFD: "mount_image() and unmount_image()",
}


def _refused(sandbox_id: str, kind: int, exc: agent.AgentError) -> Optional[InvalidError]:
    if exc.errno != errno.EPROTONOSUPPORT:
        return None
    if kind == agent.REQ_ENTRY_STDIN_CLOSE:  # init_handoff.h: HANDOFF_NO_EOF_WHY
        return InvalidError(
            f"Sandbox {sandbox_id}: stdin.write_eof() cannot end the input of a pty=True sandbox under the gVisor "
            "runner: this gVisor's terminal has no end of input (its line discipline drops the ^D a terminal's "
            "end of input is, and a read of it never returns 0; docs/RUNNERS.md). Instead of write_eof(), end the "
            "program through its input (e.g. 'exit\\n' to a shell), or terminate() the sandbox, or create it "
            "without pty=True or under the bwrap or nsjail runner.")
    return refusal(sandbox_id, kind) if kind in _NEEDS_A_DESCRIPTOR else None


def mounts_refused(sandbox_id: str) -> InvalidError:
    """The error for mount_image() and unmount_image() under the gVisor runner: the API raises it
    before any work, init answers their request with EPROTONOSUPPORT all the same."""
    return refusal(sandbox_id, agent.REQ_PIDFD)


def refusal(sandbox_id: str, kind: int) -> InvalidError:
    """The error for a request init refuses under the gVisor runner (_NEEDS_A_DESCRIPTOR)."""
    return InvalidError(f"Sandbox {sandbox_id}: the gVisor runner cannot give {_NEEDS_A_DESCRIPTOR[kind]}: it cannot "
                        "hand a descriptor out of the sandbox (docs/RUNNERS.md). Use the bwrap or nsjail runner for "
                        "it, or exec() a command that reads or writes the file.")


class Stat(NamedTuple):
    """lstat of a path in the sandbox, as init sent it."""

    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    symlink_target: Optional[str]


class InitClient:
    """Requests to the init of the sandbox `sandbox_id`, which listens on `socket_path`."""

    __slots__ = ("socket_path", "sandbox_id")

    def __init__(self, socket_path: Path, sandbox_id: str) -> None:
        self.socket_path, self.sandbox_id = socket_path, sandbox_id

    # Processes -----------------------------------------------------------

    async def exec(self, spec: ExecSpec, pty: bool = False) -> ContainerProcess[Any]:
        """Start `spec` in the sandbox; returns once it runs. With `pty` on a terminal init makes inside the
        sandbox (so the process can name it) and relays."""
        return await start_process(self.socket_path, self.sandbox_id, spec, pty)

    async def passes(self, argv: Sequence[str]) -> bool:
        """Whether `argv` (a readiness probe) runs to exit code 0; False if init cannot start it."""
        try:
            process = await self.exec(ExecSpec(argv, stdout="devnull", stderr="devnull"))
        except agent.AgentError:
            return False  # e.g. the probe command is not installed (yet)
        return await ContainerProcess.wait.__wrapped__(process) == 0  # the core coroutine, run by our caller

    async def entry_stdin(self) -> int:
        """A write end of the entrypoint's stdin: init's own, or under gVisor, which hands no descriptor
        out, a pipe's whose read end init copies into it (native/init/init_entry.c)."""
        reply = await self._call(agent.REQ_ENTRY_STDIN, unsupported_ok=True)
        if reply is not None:
            return reply.fds[0]
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            await self._call(agent.REQ_ENTRY_STDIN, fds=[read_end])
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return write_end

    async def pidfd(self) -> int:
        """A pidfd of init, through which the host joins the sandbox's namespaces (_core/mounts.py)."""
        return (await self._call(agent.REQ_PIDFD)).fds[0]

    async def close_entry_stdin(self) -> None:
        """Close the entrypoint's stdin (init keeps its write end until told); a no-op once the sandbox ended.
        InvalidError under gVisor with pty=True, whose terminal has no end of input (init refuses)."""
        await self._call(agent.REQ_ENTRY_STDIN_CLOSE, finished_ok=True)

    async def _call(self, kind: int, finished_ok: bool = False, fds: Sequence[int] = (),
                    unsupported_ok: bool = False) -> Optional[agent.Reply]:
        """init's reply; None if the sandbox ended and `finished_ok`, or init does not support `kind` (gVisor)
        and `unsupported_ok`."""
        try:
            return await agent.call(self.socket_path, kind, fds=fds)
        except agent.AgentGone:
            if finished_ok:
                return None
            raise await records.finished_error(self.sandbox_id) from None
        except agent.AgentError as exc:
            if unsupported_ok and exc.errno == errno.EPROTONOSUPPORT:
                return None
            raise _refused(self.sandbox_id, kind, exc) or ConflictError(f"Sandbox {self.sandbox_id}: {exc}") from None

    # Files ---------------------------------------------------------------

    async def _request(self, kind: int, head: bytes, path: str, sock: Optional[socket.socket] = None,
                       fds: Sequence[int] = ()) -> agent.Reply:
        """One path request to init, on `sock` or a connection of its own; its errno becomes the
        matching OSError subclass."""
        if not isinstance(path, str) or not path or "\0" in path:
            raise ValueError(f"Invalid path: {path!r}")
        body = head + os.fsencode(path) + b"\0"
        try:
            if sock is None:
                return await agent.call(self.socket_path, kind, body, fds)
            return await agent.request(sock, kind, body)
        except agent.AgentGone:
            raise await records.finished_error(self.sandbox_id) from None
        except agent.AgentError as exc:
            raise _refused(self.sandbox_id, kind, exc) or os_error(exc.errno, path) from None

    async def _fs_op(self, op: int, path: str, argument: int = 0, fds: Sequence[int] = ()) -> agent.Reply:
        return await self._request(agent.REQ_FSOP, agent.FSOP.pack(op, argument), path, fds=fds)

    async def open(self, path: str, flags: int) -> io.RawIOBase:
        """The regular file `path`, opened inside the sandbox with os.open `flags`, as an unbuffered
        binary file: io.FileIO over the descriptor init passes, or under gVisor the RelayFile init
        relays on the connection. The sandbox decides what the path is: anything but a regular file
        (a FIFO that would block for ever, a device that never ends) is refused."""
        readable, writable = flags & os.O_ACCMODE != os.O_WRONLY, flags & os.O_ACCMODE != os.O_RDONLY
        try:
            sock = agent.connect(self.socket_path)
        except agent.AgentGone:
            raise await records.finished_error(self.sandbox_id) from None
        try:
            reply = await self._request(agent.REQ_OPEN, agent.OPEN.pack(flags, 0o666), path, sock)
            if not reply.fds:  # init relays the file on this connection (the gVisor runner)
                _check_regular(reply.unpack(agent.STAT)[0], path)
                return RelayFile(sock, readable, writable)
        except BaseException:
            sock.close()
            raise
        sock.close()
        fd = _one_fd(reply, "an open", path)
        try:
            _check_regular(os.fstat(fd).st_mode, path)
            os.set_blocking(fd, True)
            return io.FileIO(fd, "r+b" if readable and writable else ("rb" if readable else "wb"))
        except BaseException:
            os.close(fd)
            raise

    async def stat(self, path: str) -> Stat:
        """lstat of `path`: symlinks are not followed."""
        body = (await self._fs_op(agent.FSOP_STAT, path)).body
        if len(body) < agent.STAT.size:
            raise OSError(errno.EPROTO, f"malformed stat reply from init: {len(body)} bytes where "
                                        f"{agent.STAT.size} are needed", path)
        mode, uid, gid, _pad, size, mtime_ns = agent.STAT.unpack_from(body)
        target = body[agent.STAT.size:].split(b"\0", 1)[0]
        return Stat(mode, uid, gid, size, mtime_ns, os.fsdecode(target) if stat_module.S_ISLNK(mode) else None)

    async def list_dir(self, path: str) -> List[Tuple[str, bool]]:
        """(name, is a directory) for each entry; symlinks are never followed."""
        body = (await self._fs_op(agent.FSOP_LIST, path)).body
        entries = []
        while body:
            end = body.index(b"\0", 1)
            entries.append((os.fsdecode(body[1:end]), body[0] == agent.DT_DIR))
            body = body[end + 1:]
        return entries

    async def make_dirs(self, path: str, parents: bool) -> None:
        """mkdir, or with `parents` `mkdir -p` (a part that exists is no error)."""
        if not parents:
            await self._fs_op(agent.FSOP_MKDIR, path, 0o755)
            return
        prefix = "/" if path.startswith("/") else ""
        for part in [p for p in path.split("/") if p]:
            prefix = f"{prefix}{part}/"
            try:
                await self._fs_op(agent.FSOP_MKDIR, prefix, 0o755)
            except FileExistsError:
                continue

    async def remove(self, path: str, recursive: bool) -> None:
        """A file or an empty directory; with `recursive`, a whole tree."""
        if await self._unlinked(path):
            return
        if recursive:
            # Depth first with a stack of our own, not by recursion: sandbox code nests a tree as deep as a
            # path can name (red14: 1500 levels raised RecursionError). Each directory: (path, entries left).
            stack: List[Tuple[str, List[Tuple[str, bool]]]] = [(path, await self.list_dir(path))]
            while stack:
                current, entries = stack[-1]
                if not entries:
                    stack.pop()
                    if stack:
                        await self._fs_op(agent.FSOP_RMDIR, current)
                    continue
                name, is_dir = entries.pop()
                child = f"{current.rstrip('/')}/{name}"
                if not is_dir:
                    await self._fs_op(agent.FSOP_UNLINK, child)
                elif not await self._unlinked(child):
                    stack.append((child, await self.list_dir(child)))
        await self._fs_op(agent.FSOP_RMDIR, path)

    async def _unlinked(self, path: str) -> bool:
        """Unlinks `path` unless it is a directory (False)."""
        try:
            await self._fs_op(agent.FSOP_UNLINK, path)
            return True
        except IsADirectoryError:
            return False
        except PermissionError as exc:  # unlink of a directory is EISDIR, or EPERM on some filesystems
            if exc.errno != errno.EPERM:
                raise
            return False

    async def watch(self, path: str, recursive: bool) -> Tuple[int, Dict[int, str]]:
        """(a non-blocking descriptor whose reads are inotify events on `path`, or with `recursive`
        every directory below it; the sandbox path each of their watch descriptors stands for):
        init's inotify descriptor, or under gVisor, which hands none out, a socket of ours into
        which a process of init's relays each read of it (native/init/init_fs.c); at its end it
        reads end of file."""
        flags = agent.WATCH_RECURSIVE if recursive else 0
        try:
            reply = await self._fs_op(agent.FSOP_WATCH, path, flags)
        except OSError as exc:
            if exc.errno != errno.EPROTONOSUPPORT:
                raise
            return await self._relayed_watch(path, flags)
        fd = _one_fd(reply, "a watch", path)
        try:
            return fd, parse_watches(reply.body, path)
        except BaseException:
            os.close(fd)
            raise


    async def _relayed_watch(self, path: str, flags: int) -> Tuple[int, Dict[int, str]]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            with theirs:
                reply = await self._fs_op(agent.FSOP_WATCH, path, flags, fds=[theirs.fileno()])
            watches = parse_watches(reply.body, path)
        except BaseException:
            ours.close()
            raise
        ours.setblocking(False)
        return ours.detach(), watches


    async def tree(self, path: str) -> socket.socket:
        """A socket from which the directory `path`'s tree reads as native/common/tree.h's stream, written by a
        process of init's (the gVisor runner, whose namespaces the host cannot join: image/treestream.py)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            with theirs:
                await self._fs_op(agent.FSOP_TREE, path, fds=[theirs.fileno()])
        except BaseException:
            ours.close()
            raise
        return ours


def parse_watches(body: bytes, base: str) -> Dict[int, str]:
    """A watch reply: per watch, an int32 wd and the watched path relative to `base`."""
    watches, offset = {}, 0
    while offset + agent.WATCH_ENTRY.size <= len(body):
        (wd,) = agent.WATCH_ENTRY.unpack_from(body, offset)
        end = body.find(b"\0", offset + agent.WATCH_ENTRY.size)
        if end < 0:
            raise OSError(errno.EPROTO, "malformed watch reply from init: a path without its end", base)
        relative = os.fsdecode(body[offset + agent.WATCH_ENTRY.size: end])
        watches[wd] = posixpath.join(base, relative) if relative else base
        offset = end + 1
    return watches


def _one_fd(reply: agent.Reply, request: str, path: str) -> int:
    """The descriptor a reply carries; the OSError (its fds closed) if it carries none or several."""
    if len(reply.fds) != 1:
        for fd in reply.fds:
            os.close(fd)
        raise OSError(errno.EPROTO, f"init sent no file for {request} request", path)
    return reply.fds[0]


def _check_regular(mode: int, path: str) -> None:
    """The OSError for anything but a regular file (`mode`: its st_mode)."""
    if stat_module.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat_module.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)", path)

