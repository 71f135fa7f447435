"""StreamReader and StreamWriter with Modal's semantics (modal.io_streams).

A reader pulls raw chunks from a source (a pipe from an exec'd process, or a
file the sandbox entrypoint writes and any process may follow), then turns
them into what the caller asked for: bytes, strictly decoded text, or whole
lines. All reads and iterations of one reader share one position.
"""

from __future__ import annotations

import codecs
import collections
import errno
import fcntl
import io
import os
import select
import sys
import threading
from pathlib import Path
from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Deque,
    Generic,
    Iterator,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from . import _aio, _fork, bounds
from ._aio import synchronized
from .exception import InvalidError, ResourceExhaustedError
from .stream_type import StreamType

CHUNK = 1 << 20
_PIPE_DEFAULT = 1 << 16  # a new pipe's size (Linux)
STDIN_BUFFER_LIMIT = 16 << 20
_FOLLOW_POLL_MIN, _FOLLOW_POLL_MAX = 0.005, 0.05
# A wait that leaves a pipe to its reader looks again this often: the reader may stop.
_RECHECK_S = 0.05
# Chunks taken from one pipe per drain pass, so that a process writing as fast as we
# read cannot keep one pass (a poll(), say) going for ever.
_DRAIN_CHUNKS = 8
_STREAM_NAMES = ("stdout", "stderr")


UTF8_MAX_CONTINUATION = 3  # bytes after a character's first
_UTF8_DECODER = codecs.getincrementaldecoder("utf-8")  # looked up once: every exec makes two readers


class _Cut(Exception):
    """Raised by a source where it dropped output: its reader has reached the cut."""

    def __init__(self, stream: str, kept: int, dropped: int) -> None:
        super().__init__(
            f"{stream} of this exec went past the {kept} bytes kept while nobody read it "
            f"({bounds.variable('exec_unread_output')}); the rest of it was dropped ({dropped} bytes so far). "
            f"Read the stream while the process runs (before wait(), or in a thread or task), or raise the bound. "
            f"This error's .partial holds the output read up to the cut."
        )


class Source:
    """What a StreamReader reads from. `claim(+1)` while a reader is on it (an iterator
    alive, a read() running), `claim(-1)` after: a pipe nobody claims may be drained."""

    __slots__ = ()

    async def read(self) -> bytes:
        raise NotImplementedError

    def claim(self, delta: int) -> None:
        pass

    def resumed(self) -> bool:
        """Whether output was released before the data read last (its reader fell behind a
        bounded file): that data starts where the kept output does, perhaps mid-character."""
        return False

    def close(self) -> None:
        pass


class _Pipe:
    """One read end, and what was moved out of it while nobody read it."""

    __slots__ = ("fd", "name", "backlog", "kept", "dropped", "cut", "readers", "small")

    def __init__(self, fd: int, name: str) -> None:
        os.set_blocking(fd, False)
        self.fd: Optional[int] = fd
        self.name = name
        # stdout is raised to CHUNK once a read finds it full, not at the exec: most execs write
        # little, and the resize (F_SETPIPE_SZ) costs about 1% of an exec("true").
        self.small = name == "stdout"
        self.backlog: Deque[bytes] = collections.deque()
        self.kept = 0  # bytes in the backlog
        self.dropped = 0  # bytes thrown away past the bound
        self.cut = False  # the bound was reached: the rest of the stream is dropped
        self.readers = 0

    def read_fd(self) -> Optional[bytes]:
        """Bytes from the pipe, b"" at EOF (closing it), None if it is empty but open."""
        try:
            data = os.read(self.fd, CHUNK)
        except BlockingIOError:
            return None
        if not data:
            self.close()
        elif self.small and len(data) >= _PIPE_DEFAULT:
            self._grow()
        return data

    def _grow(self) -> None:
        self.small = False
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, CHUNK)
        except OSError:
            pass  # over the per-user pipe quota: its size still works

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


class OutputPipes:
    """The read ends of one process's stdout and stderr (either may be absent).

    Whoever waits on the process (wait, poll) or on one of the pipes (a read)
    first moves whatever the *unclaimed* pipes hold into their backlogs, and
    wakes on them too: so a process never blocks for ever on a pipe that nobody
    reads, whatever order the caller reads and waits in. A pipe a reader claims
    is left to it (back-pressure for a slow consumer). Each backlog keeps at most
    the `exec_unread_output` bound; past it the rest of that stream is read and
    dropped, and its reader gets a ResourceExhaustedError at the cut.

    Nothing here refers back to a reader or the process, so when the last of them
    goes the descriptors close at once (refcounting, no cycle to wait for).
    """

    def __init__(self, fds: Sequence[Optional[int]], keep: int) -> None:
        """Owns `fds` (stdout's and stderr's read ends, or None); `keep` is the
        `exec_unread_output` bound."""
        self._pipes = [None if fd is None else _Pipe(fd, name) for fd, name in zip(fds, _STREAM_NAMES)]
        self._keep = keep
        self._lock = threading.Lock()
        self._owner = _fork.pid
        self._inherited = False
        _fork.track(self)

    def source(self, index: int) -> Optional["PipeSource"]:
        return None if self._pipes[index] is None else PipeSource(self, index)

    def _check_owner(self) -> None:
        if self._inherited:  # before any lock: the parent's threads may have held it at the fork
            raise _fork.inherited_error("exec's output", self._owner)

    async def read(self, index: int) -> bytes:
        """The next chunk of stream `index`, b"" at its end."""
        pipe = self._pipes[index]
        self.claim(index, +1)
        try:
            while True:
                with self._lock:  # never across the wait below
                    data = self._take(pipe)
                    if data is not None:
                        return data
                    others, recheck = self._drain_unclaimed(skip=pipe)
                    fd = pipe.fd
                await _aio.readable(fd, *others, timeout=_RECHECK_S if recheck else None)
        finally:
            self.claim(index, -1)

    def claim(self, index: int, delta: int) -> None:
        if self._inherited and delta < 0:
            return  # an iterator the child inherited, being finalized
        self._check_owner()
        with self._lock:
            self._pipes[index].readers += delta

    def drain_unclaimed(self) -> tuple:
        """Move what the unclaimed pipes hold into their backlogs; (the fds still open
        among them, to wait on; whether a claimed pipe was left to its reader)."""
        self._check_owner()
        with self._lock:
            return self._drain_unclaimed()

    def unclaimed(self) -> tuple:
        """What drain_unclaimed returns, without draining (a wait that drains once it woke)."""
        self._check_owner()
        with self._lock:
            return self._drain_unclaimed(drain=False)

    def _take(self, pipe: _Pipe) -> Optional[bytes]:
        if pipe.backlog:
            data = pipe.backlog.popleft()
            pipe.kept -= len(data)
            return data
        if pipe.cut:
            raise _Cut(pipe.name, self._keep, pipe.dropped)
        return b"" if pipe.fd is None else pipe.read_fd()

    def _drain_unclaimed(self, skip: Optional[_Pipe] = None, drain: bool = True) -> tuple:
        fds, recheck = [], False
        for pipe in self._pipes:
            if pipe is None or pipe is skip or pipe.fd is None:
                continue
            if pipe.readers:
                recheck = True
                continue
            if drain:
                self._drain(pipe)
            if pipe.fd is not None:
                fds.append(pipe.fd)
        return fds, recheck

    def _drain(self, pipe: _Pipe) -> None:
        for _ in range(_DRAIN_CHUNKS):
            data = pipe.read_fd() if pipe.fd is not None else None
            if not data:
                return
            room = 0 if pipe.cut else self._keep - pipe.kept
            if len(data) > room:  # the bound: keep what fits, drop the rest of the stream
                pipe.cut = True
                pipe.dropped += len(data) - room
                data = data[:room]
            if data:
                pipe.backlog.append(data)
                pipe.kept += len(data)

    def close(self, index: int) -> None:
        self._check_owner()
        with self._lock:
            pipe = self._pipes[index]
            pipe.close()
            pipe.backlog.clear()
            pipe.kept, pipe.cut = 0, False

    def close_all(self) -> None:
        for pipe in self._pipes:
            if pipe is not None:
                pipe.close()

    def _after_fork_in_child(self) -> None:
        self._inherited = True
        for pipe in self._pipes:
            if pipe is not None and pipe.fd is not None:
                try:
                    os.close(pipe.fd)
                except OSError:
                    pass
                pipe.fd = None
                pipe.backlog.clear()

    def __del__(self) -> None:
        if hasattr(self, "_pipes"):
            self.close_all()


class PipeSource(Source):
    """Stream `index` of an OutputPipes: what a process's StreamReader reads."""

    __slots__ = ("_pipes", "_index")

    def __init__(self, pipes: OutputPipes, index: int) -> None:
        self._pipes, self._index = pipes, index

    def read(self):
        return self._pipes.read(self._index)

    def claim(self, delta: int) -> None:
        self._pipes.claim(self._index, delta)

    def close(self) -> None:
        self._pipes.close(self._index)


class FollowSource(Source):
    """A file that another process appends to, followed until `finished()`.

    Read at an offset of its own (pread), so a forked child's copy of the reader
    cannot move the parent's position; it starts at `offset` (`pysandbox logs --tail`)."""

    def __init__(self, path: Path, finished: Callable[[], bool], offset: int = 0) -> None:
        self._path, self._finished = path, finished
        self._fd: Optional[int] = None
        self._offset = offset
        self._done = False
        self._resumed = False

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
        offset, data = read_kept(self._fd, self._offset, CHUNK)
        self._resumed = offset > self._offset
        self._offset = offset + len(data)
        return data

    def resumed(self) -> bool:
        return self._resumed

    def close(self) -> None:
        self._done = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LocalStdout:
    """An exec's output shown on this process's stdout (StreamType.STDOUT): the process writes into a pipe whose
    read end a thread of ours copies there. Never this process's own stdout descriptor handed into the sandbox:
    sandbox code holding it could keep it past the exec, read the terminal it is (what its user types next),
    change that terminal's modes, or truncate and overwrite the file it is (red14).

    `write_end` goes to the process (its holder closes it once sent); `flush()` copies what the pipe holds now,
    so that output written before the process ended is shown before wait() returns."""

    def __init__(self) -> None:
        self._fd, self.write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._fd, False)
        sys.stdout.flush()
        try:
            self._target: Optional[int] = os.dup(sys.stdout.fileno())
        except (AttributeError, io.UnsupportedOperation, ValueError, OSError):
            self._target = None  # sys.stdout is a Python-level object: written as text
        self._lock = threading.Lock()
        self._eof = False
        threading.Thread(target=self._run, daemon=True, name="pysandbox-stdout").start()

    def flush(self) -> None:
        with self._lock:
            if not self._eof:
                self._move()

    def _run(self) -> None:
        try:
            while not self._eof:
                select.select([self._fd], [], [])
                with self._lock:
                    self._move()
        finally:
            with self._lock:
                self._eof = True
                os.close(self._fd)
                if self._target is not None:
                    os.close(self._target)

    def _move(self) -> None:
        """Copy what the pipe holds (under the lock); at its end, note it."""
        while True:
            try:
                chunk = os.read(self._fd, CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                self._eof = True
                return
            try:
                self._write(chunk)
            except (OSError, ValueError):
                pass  # our stdout is gone: the output is dropped, the process never blocks on it

    def _write(self, chunk: bytes) -> None:
        if self._target is None:
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
            return
        view = memoryview(chunk)
        while view:
            try:
                view = view[os.write(self._target, view):]
            except BlockingIOError:
                select.select([], [self._target], [])


def read_kept(fd: int, offset: int, size: int) -> Tuple[int, bytes]:
    """(where the data starts, up to `size` bytes of it) of an entrypoint's output file at or
    after `offset`, skipping what the supervisor released to keep the file within its bound
    (native/supervisor/output.c punches the oldest output out as a hole): a reader that fell behind
    resumes at the oldest byte kept. Reads at an offset, never the fd's shared position."""
    try:
        offset = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return offset, b""  # nothing past the offset (yet)
        if exc.errno != errno.EINVAL:
            raise  # EINVAL: a file system without SEEK_DATA, which has no holes either
    return offset, os.pread(fd, size, offset)


# What a StreamReader gives: str for exec(text=True) (the default) and a sandbox's own stdio, else bytes.
T = TypeVar("T", str, bytes)


class StreamReader(Generic[T]):
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
        self._decoder = _UTF8_DECODER("strict") if text else None
        self._empty: Union[str, bytes] = "" if text else b""
        # Decoded but not yet delivered: the current chunk from _pos on, after the
        # pieces of a line that began in earlier chunks (by_line only).
        self._chunk: Union[str, bytes] = self._empty
        self._pos = 0
        self._carried: list = []
        self._eof = False
        self._cut: Optional[_Cut] = None  # raised once the reader reaches it
        self._resync = 0  # continuation bytes still to drop after a gap (text only)
        self._lock = threading.Lock()

    @property
    def file_descriptor(self) -> int:
        return self._file_descriptor

    def _check_readable(self) -> None:
        if self._stream_type == StreamType.DEVNULL:
            raise ValueError("Reading is not supported for a stream configured with StreamType.DEVNULL")
        if self._stream_type == StreamType.STDOUT:
            raise InvalidError("Output can only be retrieved using the PIPE stream type.")

    async def _next_chunk(self):
        """The next decoded, non-empty chunk from the source; None at its end (or cut)."""
        while not self._eof and self._source is not None:
            try:
                data = await self._source.read()
            except _Cut as cut:
                self._eof, self._cut = True, cut
                if self._decoder is not None:
                    self._decoder.reset()  # a character split by the cut is not an encoding error
                return None
            if not data:
                self._eof = True
                tail = self._decoder.decode(b"", final=True) if self._decoder is not None else b""
                return tail or None
            if self._decoder is not None and self._source.resumed():
                self._decoder.reset()  # what it held of a character before the gap is gone
                self._resync = UTF8_MAX_CONTINUATION
            if self._resync:
                data = self._resynchronized(data)
            chunk = self._decoder.decode(data) if self._decoder is not None else data
            if chunk:
                return chunk
        return None

    def _resynchronized(self, data: bytes) -> bytes:
        """`data` without the continuation bytes of a character whose start was released."""
        start = 0
        while start < min(len(data), self._resync) and 0x80 <= data[start] < 0xC0:
            start += 1
        self._resync = 0 if start < len(data) else self._resync - start
        return data[start:]

    def _take_pending(self):
        with self._lock:
            rest = self._chunk[self._pos:]
            if self._carried:
                rest = self._empty.join([*self._carried, rest])
                self._carried.clear()
            self._chunk, self._pos = self._empty, 0
            return rest

    def _take_line(self):
        """The next whole line of what is pending, or None (the rest is carried)."""
        with self._lock:
            newline = self._chunk.find("\n", self._pos)
            if newline < 0:
                if self._pos < len(self._chunk):
                    self._carried.append(self._chunk[self._pos:])
                self._chunk, self._pos = self._empty, 0
                return None
            line = self._chunk[self._pos:newline + 1]
            self._pos = newline + 1
            if self._carried:
                line = "".join([*self._carried, line])
                self._carried.clear()
            return line

    async def _next_item(self):
        """The next chunk (or line), or None at EOF."""
        if not self._by_line:
            pending = self._take_pending()
            return pending if pending else await self._next_chunk()
        while True:
            line = self._take_line()
            if line is not None:
                return line
            chunk = await self._next_chunk()
            if chunk is None:
                return self._take_pending() or None
            with self._lock:
                self._chunk, self._pos = chunk, 0

    def _raise_cut(self, partial) -> None:
        cut, self._cut = self._cut, None
        if cut is not None:
            error = ResourceExhaustedError(str(cut))
            error.partial = partial
            raise error

    def _claim(self, delta: int) -> None:
        if self._source is not None:
            self._source.claim(delta)

    @synchronized
    async def read(self) -> T:
        """Everything up to EOF; empty once EOF was reached."""
        self._check_readable()
        self._claim(+1)
        try:
            # Linear in the output's size. Bytes grow one buffer in place (BytesIO: the
            # result's pages are touched once); text is decoded chunk by chunk, joined once.
            collected = io.BytesIO() if self._decoder is None else []
            add = collected.write if self._decoder is None else collected.append
            add(self._take_pending())
            while True:
                chunk = await self._next_chunk()
                if chunk is None:
                    break
                add(chunk)
        finally:
            self._claim(-1)
        result: Any = collected.getvalue() if self._decoder is None else "".join(collected)
        self._raise_cut(result)
        return result  # type: ignore[no-any-return]

    async def _items(self) -> AsyncGenerator[T, None]:
        self._check_readable()
        self._claim(+1)  # for the iterator's whole life: a pipe being iterated is never drained
        try:
            while True:
                item = await self._next_item()
                if item is None:
                    self._raise_cut(self._empty)
                    return
                yield item
        finally:
            self._claim(-1)

    def __iter__(self) -> Iterator[T]:
        return _aio.iterate_sync(self._items())

    def __aiter__(self) -> AsyncIterator[T]:
        return _aio.iterate_async(self._items())

    async def _next(self) -> T:
        """One item, for next(reader): Modal's reader is its own iterator (deprecated there, still
        there), so `next(p.stdout)` and `await anext(p.stdout)` work; the position is the one read()
        and iteration share."""
        self._check_readable()
        self._claim(+1)
        try:
            item = await self._next_item()
        finally:
            self._claim(-1)
        if item is None:
            self._raise_cut(self._empty)
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    def __next__(self) -> T:
        try:
            return _aio.run_sync(self._next())  # type: ignore[no-any-return]
        except StopAsyncIteration:
            raise StopIteration from None

    async def __anext__(self) -> T:
        return await _aio.run_async(self._next())  # type: ignore[no-any-return]

    @synchronized
    async def close(self) -> None:
        if self._source is not None:
            self._source.close()
        self._eof = True

    aclose = close  # Modal's name for it (hidden there): reader.aclose(), await reader.aclose.aio()


class StreamWriter:
    """Buffers data for a process's stdin; drain() sends it (and the EOF)."""

    def __init__(
        self, fd: Optional[int] = None, open_fd: Optional[Callable] = None, close_remote: Optional[Callable] = None
    ) -> None:
        # Either the write end itself, or a core coroutine function that fetches
        # it on first drain (a sandbox's stdin comes from init only when needed).
        self._fd, self._open_fd, self._close_remote = fd, open_fd, close_remote
        self._nonblocking = False  # set at the first drain: most execs never write to stdin
        self._buffer = bytearray()
        self._eof_requested = False
        self._closed = False
        self._release_lock = threading.Lock()
        self._owner = _fork.pid
        self._inherited = False
        _fork.track(self)

    def _check_owner(self) -> None:
        if self._inherited:
            raise _fork.inherited_error("exec's stdin", self._owner)

    def write(self, data: Union[bytes, bytearray, memoryview, str]) -> None:
        self._check_owner()
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
        self._check_owner()
        self._eof_requested = True

    @synchronized
    async def drain(self) -> None:
        self._check_owner()
        if self._closed or (not self._buffer and not self._eof_requested):
            return
        if self._fd is None:
            if self._open_fd is None:
                return  # released meanwhile (the process ended, or is being collected)
            self._fd = await self._open_fd()
        if not self._nonblocking:
            os.set_blocking(self._fd, False)
            self._nonblocking = True
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

    def _after_fork_in_child(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        # A sandbox's stdin is fetched from init on demand: the child fetches its own.
        # An exec's stdin exists once, and stays the parent's.
        self._inherited = self._open_fd is None
        self._nonblocking = False
        self._release_lock = threading.Lock()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.release()

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
