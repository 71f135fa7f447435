"""`sb.filesystem`: Modal 1.6's file API, on the same agent requests as sb.open().

Every path is resolved by the sandbox's init, inside the sandbox and as the
sandbox's user. Errors are Modal's SandboxFilesystem* classes (which are not
OSErrors); a sandbox that is gone gives NotFoundError.
"""

from __future__ import annotations

import functools
import grp
import io
import os
import pwd
import stat as stat_module
from typing import AsyncGenerator, Callable, List, Optional, Tuple, Union

from . import _aio, _beneath, bounds
from ._aio import synchronized
from ._core.fserrors import filesystem_error
from ._core.initclient import InitClient
from .exception import (
    ConflictError,
    InvalidError,
    SandboxFilesystemFileTooLargeError,
    SandboxFilesystemPathAlreadyExistsError,
)
from .types import FileInfo, FileType, FileWatchEvent, FileWatchEventType
from .watch import check_watch_args, watch_events

CHUNK = 1 << 20


def _name_of(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


class SandboxFilesystem:
    """Files of one sandbox: `sb.filesystem.read_text("/etc/hostname")`."""

    def __init__(self, client: Callable[[], InitClient]) -> None:
        self._client = client  # the sandbox's InitClient; ClientClosed once it is detached

    def _path(self, op: str, path) -> str:
        path = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidError(f"Sandbox.filesystem.{op}() currently only supports absolute remote_path values")
        self._client()
        return path

    async def _call(self, request):
        """Await an InitClient request with Modal 1.6's error classes."""
        try:
            return await request
        except (ConflictError, OSError) as exc:
            raise filesystem_error(exc) from None

    async def _open(self, path: str, flags: int) -> io.RawIOBase:
        return await self._call(self._client().open(path, flags))

    async def _open_file(self, path: str, bound: str) -> Tuple[io.RawIOBase, int]:
        """(file, size) of `path` for reading. The sandbox decides what the path is:
        only a regular file (InitClient.open) no larger than `bound` is read (a FIFO would
        block for ever, /dev/zero never end), and only what it held when opened."""
        file = await self._open(path, os.O_RDONLY)
        try:
            size = _io(file.seek, path, 0, os.SEEK_END)
            _io(file.seek, path, 0)
            if size > bounds.get(bound):
                raise SandboxFilesystemFileTooLargeError(
                    f"{path} holds {size} bytes, over the {bounds.get(bound)} byte limit ({bounds.variable(bound)})")
        except BaseException:
            file.close()
            raise
        return file, size

    async def _read_all(self, path: str) -> bytes:
        file, size = await self._open_file(path, "file_read")
        with file:
            data = bytearray()
            while len(data) < size:
                chunk = _io(file.read, path, min(CHUNK, size - len(data)))
                if not chunk:
                    break  # it shrank meanwhile
                data += chunk
                await _aio.checkpoint()
            return bytes(data)

    @synchronized
    async def read_bytes(self, remote_path: str) -> bytes:
        return await self._read_all(self._path("read_bytes", remote_path))

    @synchronized
    async def read_text(self, remote_path: str) -> str:
        return (await self._read_all(self._path("read_text", remote_path))).decode("utf-8")

    async def _create(self, path: str) -> io.RawIOBase:
        """A file for writing `path` from scratch, its parents created first."""
        parent = path.rsplit("/", 1)[0]
        if parent:
            await self._make_dirs(parent, True)
        return await self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

    async def _write_all(self, path: str, data) -> None:
        with await self._create(path) as file:
            view = memoryview(data).cast("B")
            while view:
                view = view[_io(file.write, path, view[:CHUNK]):]

    @synchronized
    async def write_bytes(self, data: Union[bytes, bytearray, memoryview], remote_path: str) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write_bytes() expects bytes-like data, got {type(data).__name__}")
        await self._write_all(self._path("write_bytes", remote_path), data)

    @synchronized
    async def write_text(self, data: str, remote_path: str) -> None:
        if not isinstance(data, str):
            raise TypeError(f"write_text() expects str data, got {type(data).__name__}")
        await self._write_all(self._path("write_text", remote_path), data.encode("utf-8"))

    @synchronized
    async def copy_from_local(self, local_path: Union[str, os.PathLike[str]], remote_path: str) -> None:
        path = self._path("copy_from_local", remote_path)
        with open(local_path, "rb") as source:  # FileNotFoundError, IsADirectoryError, PermissionError
            with await self._create(path) as file:
                await copy_range(source, file, os.fstat(source.fileno()).st_size,
                                 functools.partial(filesystem_error, path=path))

    @synchronized
    async def copy_to_local(self, remote_path: str, local_path: Union[str, os.PathLike[str]]) -> None:
        path = self._path("copy_to_local", remote_path)
        local = os.path.abspath(os.fspath(local_path))
        file, size = await self._open_file(path, "file_copy")
        with file:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with _beneath.replacing_path(local) as target:
                await copy_range(file, io.FileIO(target, "wb", closefd=False), size,
                                 functools.partial(filesystem_error, path=path))

    async def _stat(self, path: str) -> FileInfo:
        info = await self._call(self._client().stat(path))
        kind = (FileType.SYMLINK if stat_module.S_ISLNK(info.mode)
                else FileType.DIRECTORY if stat_module.S_ISDIR(info.mode) else FileType.FILE)
        return FileInfo(
            name=path.rstrip("/").rsplit("/", 1)[-1] or "/", path=path, type=kind, size=info.size, mode=info.mode,
            permissions=stat_module.filemode(info.mode), owner=_name_of(pwd.getpwuid, info.uid),
            group=_name_of(grp.getgrgid, info.gid), modified_time=info.mtime_ns / 1e9,
            symlink_target=info.symlink_target,
        )

    @synchronized
    async def stat(self, remote_path: str) -> FileInfo:
        """Metadata of a path; symlinks are not followed."""
        return await self._stat(self._path("stat", remote_path))

    @synchronized
    async def list_files(self, remote_path: str) -> List[FileInfo]:
        path = self._path("list_files", remote_path)
        entries = await self._call(self._client().list_dir(path))
        base = path.rstrip("/")
        return [await self._stat(f"{base}/{name}") for name, _ in entries]

    async def _make_dirs(self, path: str, parents: bool) -> None:
        await self._call(self._client().make_dirs(path, parents))

    @synchronized
    async def make_directory(self, remote_path: str, *, create_parents: bool = True) -> None:
        """With create_parents (the default) like `mkdir -p`, and idempotent."""
        path = self._path("make_directory", remote_path)
        await self._make_dirs(path, create_parents)
        if create_parents and not (await self._stat(path)).is_dir():
            raise SandboxFilesystemPathAlreadyExistsError(f"{path} exists and is not a directory")

    @synchronized
    async def remove(self, remote_path: str, *, recursive: bool = False) -> None:
        """A file or an empty directory; a whole tree with recursive=True."""
        path = self._path("remove", remote_path)
        await self._call(self._client().remove(path, recursive))

    @synchronized
    async def watch(self, remote_path: str, *, filter: Optional[List[FileWatchEventType]] = None,
                    recursive: bool = False, timeout: Optional[int] = None) -> AsyncGenerator[FileWatchEvent, None]:
        """Events on a file, a directory's children, or (recursive) its whole tree;
        stops without raising once `timeout` seconds have passed."""
        path = self._path("watch", remote_path)
        check_watch_args(filter, timeout)
        try:
            async for event in watch_events(self._client(), path, filter, bool(recursive), timeout):
                yield event
        except (ConflictError, OSError) as exc:
            raise filesystem_error(exc) from None


async def copy_range(source, target, size: int, error: Optional[Callable] = None) -> None:
    """Copy the first `size` bytes of the binary file `source` to `target` (or fewer, if it
    shrank), yielding to the event loop between chunks: sendfile between two descriptors,
    else read and write (a file init relays has none). `error(exc)` turns an OSError into
    the caller's exception."""
    copy = _sendfile if _has_fileno(source) and _has_fileno(target) else _read_write
    done = 0
    while done < size:
        try:
            copied = copy(source, target, done, min(CHUNK, size - done))
        except OSError as exc:
            if error is None:
                raise
            raise error(exc) from None
        if not copied:
            return
        done += copied
        await _aio.checkpoint()


def _has_fileno(file) -> bool:
    try:
        file.fileno()
    except io.UnsupportedOperation:
        return False
    return True


def _sendfile(source, target, offset: int, count: int) -> int:
    return os.sendfile(target.fileno(), source.fileno(), offset, count)


def _read_write(source, target, _offset: int, count: int) -> int:
    data = source.read(count)
    view = memoryview(data)
    while view:
        view = view[target.write(view):]
    return len(data)


def _io(func, path: str, *args):
    """An I/O call on a sandbox file, its OSError turned into Modal's class."""
    try:
        return func(*args)
    except OSError as exc:
        raise filesystem_error(exc, path) from None
