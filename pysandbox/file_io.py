"""FileIO: Modal 1.5's handle on a file inside a sandbox (`sb.open(path, mode)`).

The sandbox's init opens the path itself, inside the sandbox and as the
sandbox's user, and passes the open descriptor back; every read and write
then goes straight to that descriptor. Paths therefore resolve in the
sandbox's root: a symlink or ".." planted by code in the sandbox cannot make
us touch a host file.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import secrets
import stat as stat_module
import string
import struct
from typing import List, Optional, Union

from . import agent, registry
from ._aio import synchronized

logger = logging.getLogger("pysandbox.verbose")

OPEN = struct.Struct("=II")
FSOP = struct.Struct("=II")
DT_DIR = 4
MAX_READ = 100 << 20
MAX_WRITE = 1 << 30
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


def parse_mode(mode: str):
    """(os.open flags, readable, writable, binary) for a Modal FileIO mode."""
    if not isinstance(mode, str) or not any(c in mode for c in "rwax"):
        raise ValueError(f"Invalid file mode: {mode}")
    if any(c not in "rwaxb+" for c in mode) or len(set(mode)) != len(mode):
        raise ValueError(f"Invalid file mode: {mode}")
    if sum(c in mode for c in "rwax") != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    base = {"r": 0, "w": os.O_CREAT | os.O_TRUNC, "a": os.O_CREAT | os.O_APPEND, "x": os.O_CREAT | os.O_EXCL}
    kind = next(c for c in mode if c in "rwax")
    plus = "+" in mode
    access = os.O_RDWR if plus else (os.O_RDONLY if kind == "r" else os.O_WRONLY)
    return base[kind] | access, kind == "r" or plus, kind != "r" or plus, "b" in mode


def _os_error(err: int, path: str) -> Exception:
    exc_type = _ERRNO_EXCEPTIONS.get(err, OSError)
    return exc_type(err, os.strerror(err), path)


async def _request(socket_path, kind: int, head: bytes, path: str, sandbox_id: str) -> agent.Reply:
    """One path request to init; its errno becomes the matching OSError subclass."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"Invalid path: {path!r}")
    try:
        return await agent.call(socket_path, kind, head + os.fsencode(path) + b"\0")
    except agent.AgentGone:
        raise await registry.finished_error(sandbox_id) from None
    except agent.AgentError as exc:
        raise _os_error(exc.errno, path) from None


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


class FileIO:
    """A file opened in a sandbox; use it as a context manager. Every method also has `.aio`."""

    def __init__(self, fd: int, path: str, readable: bool, writable: bool, binary: bool, verbose: bool) -> None:
        self._file = io.open(fd, "r+b" if readable and writable else ("rb" if readable else "wb"), buffering=0)
        self._path, self._readable, self._writable, self._binary = path, readable, writable, binary
        self._verbose = verbose
        self._closed = False
        self.fd_id = "fd-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(22))
        if verbose:
            logger.info("Opened file '%s': %s", path, self.fd_id)

    @classmethod
    async def _open(cls, socket_path, path: str, mode: str, verbose: bool, sandbox_id: str) -> "FileIO":
        flags, readable, writable, binary = parse_mode(mode)
        return cls(await open_fd(socket_path, path, flags, sandbox_id), path, readable, writable, binary, verbose)

    def _check(self, need: Optional[str] = None) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file")
        if need == "read" and not self._readable:
            raise io.UnsupportedOperation("not readable")
        if need == "write" and not self._writable:
            raise io.UnsupportedOperation("not writeable")

    def _decode(self, data: bytes) -> Union[str, bytes]:
        return data if self._binary else data.decode("utf-8")

    def _io(self, func, *args):
        try:
            return func(*args)
        except OSError as exc:
            raise _os_error(exc.errno, self._path) from None

    @synchronized
    async def read(self, n: Optional[int] = None) -> Union[str, bytes]:
        """`n` bytes from the current position, or everything left (Modal's limit holds for both)."""
        self._check("read")
        if n is not None and n > MAX_READ:
            raise ValueError("Read request payload exceeds 100 MiB limit")
        if n is not None and n >= 0:
            return self._decode(self._io(self._file.read, n))
        return self._decode(self._bounded(self._file.read, MAX_READ))

    @synchronized
    async def readline(self) -> Union[str, bytes]:
        self._check("read")
        return self._decode(self._bounded(self._file.readline, MAX_READ))

    @synchronized
    async def readlines(self) -> List[Union[str, bytes]]:
        self._check("read")
        return [self._decode(line) for line in self._bounded(self._file.readlines, MAX_READ)]

    def _bounded(self, read, limit: int):
        """`read(limit + 1)`, refused past `limit` bytes: the sandbox may grow the file as we read."""
        data = self._io(read, limit + 1)
        size = sum(map(len, data)) if isinstance(data, list) else len(data)
        if size > limit:
            raise ValueError("Read request payload exceeds 100 MiB limit")
        return data

    @synchronized
    async def write(self, data: Union[str, bytes]) -> None:
        self._check("write")
        if self._binary and not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("Expected bytes when in binary mode")
        if not self._binary and not isinstance(data, str):
            raise TypeError("Expected str when in text mode")
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if len(raw) > MAX_WRITE:
            raise ValueError("Write request payload exceeds 1 GiB limit")
        view = memoryview(raw)
        while view:
            view = view[self._io(self._file.write, view):]
        if self._verbose:
            logger.info("Wrote to file: %s", self.fd_id)

    @synchronized
    async def flush(self) -> None:
        self._check("write")  # writes are unbuffered: nothing is held back here

    @synchronized
    async def seek(self, offset: int, whence: int = 0) -> None:
        self._check()
        if whence not in (0, 1, 2):
            raise ValueError(f"Invalid whence value: {whence}")
        self._io(self._file.seek, offset, whence)

    @synchronized
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._file.close()
        if self._verbose:
            logger.info("Closed file: %s", self.fd_id)

    def __enter__(self) -> "FileIO":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    async def __aenter__(self) -> "FileIO":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close.aio()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._file.close()



def __getattr__(name: str):
    """Modal 1.5 kept the watch types in this module; they live in pysandbox.watch."""
    if name in ("FileWatchEvent", "FileWatchEventType"):
        from . import watch

        return getattr(watch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
