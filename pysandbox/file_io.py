"""FileIO: Modal 1.5's handle on a file inside a sandbox (`sb.open(path, mode)`).

The sandbox's init opens the path itself, inside the sandbox and as the
sandbox's user, and passes the open descriptor back; every read and write
then goes straight to that descriptor (under gVisor, which hands no
descriptor out, init relays them: _core/filerelay.py). Paths therefore
resolve in the sandbox's root: a symlink or ".." planted by code in the
sandbox cannot make us touch a host file.
"""

from __future__ import annotations

import io
import logging
import os
from typing import List, Optional, Union

from ._aio import synchronized
from ._core.fserrors import os_error
from ._core.initclient import InitClient
from ._state.files import new_id
from .types import FileWatchEvent as FileWatchEvent  # Modal 1.5's home
from .types import FileWatchEventType as FileWatchEventType

logger = logging.getLogger("pysandbox.verbose")

MAX_READ = 100 << 20
MAX_WRITE = 1 << 30
READ_CHUNK_MIN, READ_CHUNK_MAX = 8 << 10, 1 << 20


def parse_mode(mode: str):
    """(os.open flags, readable, writable, binary) for a Modal FileIO mode."""
    if not isinstance(mode, str) or not any(c in mode for c in "rwax"):
        raise ValueError(f"Invalid file mode: {mode}")
    if any(c not in "rwaxb+" for c in mode):
        raise ValueError(f"Invalid file mode: {mode}")
    if sum(c in "rwax" for c in mode) != 1:  # counted per character: "rr" says this too, as Modal's
        raise ValueError("must have exactly one of create/read/write/append mode")
    if len(set(mode)) != len(mode):
        raise ValueError(f"Invalid file mode: {mode}")
    base = {"r": 0, "w": os.O_CREAT | os.O_TRUNC, "a": os.O_CREAT | os.O_APPEND, "x": os.O_CREAT | os.O_EXCL}
    kind = next(c for c in mode if c in "rwax")
    plus = "+" in mode
    access = os.O_RDWR if plus else (os.O_RDONLY if kind == "r" else os.O_WRONLY)
    return base[kind] | access, kind == "r" or plus, kind != "r" or plus, "b" in mode


class FileIO:
    """A file opened in a sandbox; use it as a context manager. Every method also has `.aio`."""

    def __init__(self, file: io.RawIOBase, path: str, readable: bool, writable: bool, binary: bool,
                 verbose: bool) -> None:
        self._file = file
        self._path, self._readable, self._writable, self._binary = path, readable, writable, binary
        self._verbose = verbose
        self._closed = False
        self.fd_id = new_id("fd-")
        if verbose:
            logger.info("Opened file '%s': %s", path, self.fd_id)

    @classmethod
    async def _open(cls, client: InitClient, path: str, mode: str, verbose: bool) -> "FileIO":
        flags, readable, writable, binary = parse_mode(mode)
        return cls(await client.open(path, flags), path, readable, writable, binary, verbose)

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
            raise os_error(exc.errno, self._path) from None

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
        return self._decode(self._bounded(self._readline, MAX_READ))

    @synchronized
    async def readlines(self) -> List[Union[str, bytes]]:
        self._check("read")
        return [self._decode(line) for line in self._bounded(self._readlines, MAX_READ)]

    def _readline(self, limit: int) -> bytes:
        """A line of at most `limit` bytes from the current position, which then moves just past it. io.FileIO
        has no peek, so IOBase.readline would read it one byte per system call (red14: a 100 MiB line the
        sandbox wrote held the caller's thread, and every call of its event loop, for over a minute): read
        in chunks, growing, and seek back to the line's end. A file init relays peeks (filerelay.py)."""
        if hasattr(self._file, "peek"):
            return self._file.readline(limit)
        start, line, size = self._file.tell(), bytearray(), READ_CHUNK_MIN
        while len(line) < limit:
            chunk = self._file.read(min(size, limit - len(line)))
            if not chunk:
                break
            end = chunk.find(b"\n")
            if end >= 0:
                line += chunk[:end + 1]
                self._file.seek(start + len(line))
                break
            line += chunk
            size = min(2 * size, READ_CHUNK_MAX)
        return bytes(line)

    def _readlines(self, limit: int) -> List[bytes]:
        """The lines to the end of the file, read in chunks (as `_readline`), at most `limit` bytes of them: the
        caller asks for one more than it takes, and refuses them all if they are there."""
        if hasattr(self._file, "peek"):
            return self._file.readlines(limit)
        data = bytearray()
        while len(data) < limit:
            chunk = self._file.read(min(READ_CHUNK_MAX, limit - len(data)))
            if not chunk:
                break
            data += chunk
        lines = [line + b"\n" for line in bytes(data).split(b"\n")]
        lines[-1] = lines[-1][:-1]
        return lines if lines[-1] else lines[:-1]

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
