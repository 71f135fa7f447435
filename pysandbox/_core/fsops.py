"""The sandbox's filesystem requests: paths opened, listed, created and removed by init.

Init resolves every path inside the sandbox, as the sandbox's user, and
answers with an errno or with descriptors; an errno becomes the matching
OSError subclass (Modal 1.5's mapping), a vanished init the sandbox's end.
FileIO (file_io.py), SandboxFilesystem (filesystem.py), the old Sandbox.ls/
mkdir/rm and watches (watch.py) are all built on these calls.
"""

from __future__ import annotations

import errno
import os
import stat as stat_module
import struct
from typing import List

from .. import agent
from .._state import records

OPEN = struct.Struct("=II")
FSOP = struct.Struct("=II")
DT_DIR = 4
_ERRNO_EXCEPTIONS = {
    errno.ENOENT: FileNotFoundError,
    errno.EPERM: PermissionError,
    errno.EACCES: PermissionError,
    errno.EEXIST: FileExistsError,
    errno.ENOTDIR: NotADirectoryError,
    errno.EISDIR: IsADirectoryError,
    errno.EIO: IOError,
    errno.ENXIO: IOError,
    errno.ENOMEM: MemoryError,
}


def os_error(err: int, path: str) -> Exception:
    exc_type = _ERRNO_EXCEPTIONS.get(err, OSError)
    return exc_type(err, os.strerror(err), path)


async def _request(socket_path, kind: int, head: bytes, path: str, sandbox_id: str) -> agent.Reply:
    """One path request to init; its errno becomes the matching OSError subclass."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"Invalid path: {path!r}")
    try:
        return await agent.call(socket_path, kind, head + os.fsencode(path) + b"\0")
    except agent.AgentGone:
        raise await records.finished_error(sandbox_id) from None
    except agent.AgentError as exc:
        raise os_error(exc.errno, path) from None


async def open_fd(socket_path, path: str, flags: int, sandbox_id: str) -> int:
    """A blocking descriptor for the regular file `path`, opened inside the sandbox with
    os.open `flags`. The sandbox decides what the path is: anything but a regular file (a
    FIFO that would block for ever, a device that never ends) is refused."""
    reply = await _request(socket_path, agent.REQ_OPEN, OPEN.pack(flags, 0o666), path, sandbox_id)
    if len(reply.fds) != 1:
        for fd in reply.fds:
            os.close(fd)
        raise OSError(errno.EPROTO, "init sent no file for an open request", path)
    fd = reply.fds[0]
    try:
        regular_size(fd, path)
    except BaseException:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return fd


def regular_size(fd: int, path: str) -> int:
    """The size of the regular file open on `fd`; the OSError for anything else."""
    info = os.fstat(fd)
    if stat_module.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat_module.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)", path)
    return info.st_size


async def fs_op(socket_path, op: int, path: str, sandbox_id: str, mode: int = 0) -> agent.Reply:
    """One FSOP request (`mode` is the op's argument: a directory's mode, a watch's flags)."""
    return await _request(socket_path, agent.REQ_FSOP, FSOP.pack(op, mode), path, sandbox_id)


async def list_dir(socket_path, path: str, sandbox_id: str) -> List[tuple]:
    """(name, is a directory) for each entry; symlinks are never followed."""
    body = (await fs_op(socket_path, agent.FSOP_LIST, path, sandbox_id)).body
    entries = []
    while body:
        end = body.index(b"\0", 1)
        entries.append((os.fsdecode(body[1:end]), body[0] == DT_DIR))
        body = body[end + 1:]
    return entries


async def make_dirs(socket_path, path: str, sandbox_id: str, parents: bool) -> None:
    if not parents:
        await fs_op(socket_path, agent.FSOP_MKDIR, path, sandbox_id, 0o755)
        return
    prefix = "/" if path.startswith("/") else ""
    for part in [p for p in path.split("/") if p]:
        prefix = f"{prefix}{part}/"
        try:
            await fs_op(socket_path, agent.FSOP_MKDIR, prefix, sandbox_id, 0o755)
        except FileExistsError:
            continue


async def remove(socket_path, path: str, sandbox_id: str, recursive: bool) -> None:
    try:
        await fs_op(socket_path, agent.FSOP_UNLINK, path, sandbox_id)
        return
    except IsADirectoryError:
        pass
    except PermissionError as exc:  # unlink of a directory is EISDIR, or EPERM on some filesystems
        if exc.errno != errno.EPERM:
            raise
    if recursive:
        for name, is_dir in await list_dir(socket_path, path, sandbox_id):
            child = f"{path.rstrip('/')}/{name}"
            if is_dir:
                await remove(socket_path, child, sandbox_id, True)
            else:
                await fs_op(socket_path, agent.FSOP_UNLINK, child, sandbox_id)
    await fs_op(socket_path, agent.FSOP_RMDIR, path, sandbox_id)

