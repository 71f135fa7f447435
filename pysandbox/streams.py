"""StreamType, StreamReader and StreamWriter with Modal's semantics.

A reader pulls raw chunks from a source (a pipe from an exec'd process, or a
file the sandbox entrypoint writes and any process may follow), then turns
them into what the caller asked for: bytes, strictly decoded text, or whole
lines. All reads and iterations of one reader share one position.
"""

from __future__ import annotations

import codecs
import enum
import errno
import os
import threading
from pathlib import Path
from typing import AsyncIterator, Callable, List, Optional, Union

from . import _aio
from ._aio import synchronized
from .exception import InvalidError

CHUNK = 1 << 20
STDIN_BUFFER_LIMIT = 16 << 20
_FOLLOW_POLL_MIN, _FOLLOW_POLL_MAX = 0.005, 0.05


class StreamType(enum.Enum):
    PIPE = -1
    STDOUT = -2
    DEVNULL = -3

    def __repr__(self) -> str:
        return f"pysandbox.stream_type.StreamType.{self.name}"


class PipeSource:
    """The read end of a pipe; owns and closes the fd.

    Sources of one process are linked as siblings: while one waits for data,
    whatever the other pipe holds is moved into that sibling's backlog, unless
    the sibling has a reader of its own (which waits on its own pipe). So a
    process that fills its stderr pipe never blocks a reader of its stdout
    (and vice versa), whatever order the caller reads them in.
    """

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd: Optional[int] = fd
        self._backlog: List[bytes] = []
        self._sibling: Optional["PipeSource"] = None
        self._lock = threading.Lock()  # shared with the sibling: one pipe, one reader at a time
        self._readers = 0  # reads in progress (threads or coroutines), under the lock

    @staticmethod
    def link(first: Optional["PipeSource"], second: Optional["PipeSource"]) -> None:
        if first is not None and second is not None:
            first._sibling, second._sibling = second, first
            second._lock = first._lock

    def _read_fd(self) -> Optional[bytes]:
        """Bytes from the pipe, b"" at EOF (closing it), None if it is empty but open."""
        try:
            data = os.read(self._fd, CHUNK)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""  # a pty master once the terminal's last user is gone
        if not data:
            self._close_fd()
        return data

    def _read_now(self) -> Optional[bytes]:
        if self._backlog:
            return self._backlog.pop(0)
        return b"" if self._fd is None else self._read_fd()

    def _drain_into_backlog(self) -> None:
        while self._fd is not None:
            data = self._read_fd()
            if not data:
                return
            self._backlog.append(data)

    async def read(self) -> bytes:
        with self._lock:
            self._readers += 1
        try:
            while True:
                with self._lock:  # never across the wait below
                    data = self._read_now()
                    if data is not None:
                        return data
                    # Drain the sibling only when nobody reads it: its own reader may be
                    # about to wait on its pipe, and would never learn of the moved data.
                    sibling = self._sibling
                    drain = sibling is not None and sibling._readers == 0 and sibling._fd is not None
                    if drain:
                        sibling._drain_into_backlog()
                    waiting = [self._fd] + ([sibling._fd] if drain and sibling._fd is not None else [])
                await _aio.readable(*waiting)
        finally:
            with self._lock:
                self._readers -= 1

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self._close_fd()
            self._backlog.clear()


class FollowSource:
    """A file that another process appends to, followed until `finished()`."""

    def __init__(self, path: Path, finished: Callable[[], bool]) -> None:
        self._path, self._finished = path, finished
        self._fd: Optional[int] = None
        self._done = False

    async def read(self) -> bytes:
        delay = _FOLLOW_POLL_MIN
        while not self._done:
            finished = self._finished()  # checked before reading, so no tail is lost
            data = self._read_available()
            if data:
                return data
            if finished:
                self.close()
                break
            await _aio.sleep(delay)
            delay = min(delay * 2, _FOLLOW_POLL_MAX)
        return b""

    def _read_available(self) -> bytes:
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return b""
        return read_kept(self._fd, CHUNK)

    def close(self) -> None:
        self._done = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_kept(fd: int, size: int) -> bytes:
    """Up to `size` bytes of an entrypoint's output file from the fd's position on, skipping
    what the supervisor released to keep the file within its bound (native/output.c punches
    the oldest output out as a hole): a reader that fell behind resumes at the oldest kept byte."""
    try:
        os.lseek(fd, os.lseek(fd, 0, os.SEEK_CUR), os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return b""  # nothing past the position (yet)
        if exc.errno != errno.EINVAL:
            raise  # EINVAL: a file system without SEEK_DATA, which has no holes either
    return os.read(fd, size)


Source = Union[PipeSource, FollowSource]


class StreamReader:
    """Reads stdout or stderr of a process or a sandbox. Iterate it, or read() it."""

    def __init__(
        self,
        source: Optional[Source],
        file_descriptor: int,
        *,
        text: bool = True,
        by_line: bool = False,
        stream_type: StreamType = StreamType.PIPE,
    ) -> None:
        if by_line and not text:
            raise ValueError("line-buffering is only supported when text=True")
        self._source = source
        self._file_descriptor = file_descriptor
        self._text, self._by_line, self._stream_type = text, by_line, stream_type
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict") if text else None
        self._pending: Union[str, bytes] = "" if text else b""
        self._eof = False
        self._lock = threading.Lock()

    @property
    def file_descriptor(self) -> int:
        return self._file_descriptor

    def _check_readable(self) -> None:
        if self._stream_type == StreamType.DEVNULL:
            raise ValueError("Reading is not supported for a stream configured with StreamType.DEVNULL")
        if self._stream_type == StreamType.STDOUT:
            raise InvalidError("Output can only be retrieved using the PIPE stream type.")

    async def _fill(self) -> bool:
        """Append the next raw chunk to the pending buffer; False at EOF."""
        if self._eof or self._source is None:
            return False
        data = await self._source.read()
        with self._lock:
            if not data:
                self._eof = True
                if self._decoder is not None:
                    self._pending += self._decoder.decode(b"", final=True)
                return False
            self._pending += self._decoder.decode(data) if self._decoder is not None else data
        return True

    def _take(self, upto: Optional[int] = None):
        with self._lock:
            cut = len(self._pending) if upto is None else upto
            item, self._pending = self._pending[:cut], self._pending[cut:]
            return item

    async def _next_item(self):
        """The next chunk (or line), or None at EOF."""
        while True:
            if self._by_line:
                newline = self._pending.find("\n")
                if newline >= 0:
                    return self._take(newline + 1)
            elif self._pending:
                return self._take()
            if not await self._fill():
                return self._take() if self._pending else None

    @synchronized
    async def read(self):
        """Everything up to EOF; empty once EOF was reached."""
        self._check_readable()
        while await self._fill():
            pass
        return self._take()

    async def _items(self) -> AsyncIterator:
        self._check_readable()
        while True:
            item = await self._next_item()
            if item is None:
                return
            yield item

    def __iter__(self):
        return _aio.iterate_sync(self._items())

    def __aiter__(self):
        return _aio.iterate_async(self._items())

    @synchronized
    async def close(self) -> None:
        if self._source is not None:
            self._source.close()
        self._eof = True


class StreamWriter:
    """Buffers data for a process's stdin; drain() sends it (and the EOF)."""

    def __init__(
        self, fd: Optional[int] = None, open_fd: Optional[Callable] = None, close_remote: Optional[Callable] = None
    ) -> None:
        # Either the write end itself, or a core coroutine function that fetches
        # it on first drain (a sandbox's stdin comes from init only when needed).
        self._fd, self._open_fd, self._close_remote = fd, open_fd, close_remote
        if fd is not None:
            os.set_blocking(fd, False)
        self._buffer = bytearray()
        self._eof_requested = False
        self._closed = False
        self._release_lock = threading.Lock()

    def write(self, data: Union[bytes, bytearray, memoryview, str]) -> None:
        if self._eof_requested:
            raise ValueError("Stdin is closed. Cannot write to it.")
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__}")
        if len(self._buffer) + len(data) > STDIN_BUFFER_LIMIT:
            raise BufferError("Buffer size exceed limit. Call drain to flush the buffer.")
        self._buffer += data

    def write_eof(self) -> None:
        self._eof_requested = True

    @synchronized
    async def drain(self) -> None:
        if self._closed or (not self._buffer and not self._eof_requested):
            return
        if self._fd is None:
            if self._open_fd is None:
                return  # released meanwhile (the process object is being collected)
            self._fd = await self._open_fd()
            os.set_blocking(self._fd, False)
        await self._send_buffer()
        if self._eof_requested:
            self.release()
            if self._close_remote is not None:
                await self._close_remote()

    def release(self) -> None:
        """Close our write end (the reader sees EOF once every writer did). Safe to call
        twice and from two threads (a drain in one, garbage collection in another)."""
        with self._release_lock:
            self._closed = True
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    async def _send_buffer(self) -> None:
        view = memoryview(self._buffer)
        sent = 0
        try:
            while sent < len(view):
                try:
                    sent += os.write(self._fd, view[sent:sent + CHUNK])
                except BlockingIOError:
                    await _aio.writable(self._fd)
                except OSError as exc:
                    if exc.errno != errno.EPIPE:
                        raise
                    sent = len(view)  # the reader is gone: like a closed stdin, drop the rest
        finally:
            view.release()
            del self._buffer[:sent]
