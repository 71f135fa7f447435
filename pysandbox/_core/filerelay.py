"""A file init holds open inside a gVisor sandbox, read and written over the connection that opened it.

gVisor hands no descriptor out of the sandbox, so there init answers an OPEN with the file's stat and
keeps the file for the connection (native/common/protocol.h, PSB_REQ_FILE): each read, write or seek is
one request for one bounded chunk. RelayFile is a raw binary file, as io.FileIO is over the descriptor
the other runners pass, so sb.open() and sb.filesystem use either alike.
"""

from __future__ import annotations

import errno
import io
import socket
from typing import List, Optional

from .. import agent, bounds


class RelayFile(io.RawIOBase):
    """The regular file init relays on `sock` (which it now owns), opened readable and/or writable."""

    def __init__(self, sock: socket.socket, readable: bool, writable: bool) -> None:
        super().__init__()
        self._sock, self._readable, self._writable = sock, readable, writable

    def readable(self) -> bool:
        return self._readable

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return True

    def _call(self, op: int, arg: int = 0, whence: int = 0, data: bytes = b"") -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        timeout = bounds.get("file_relay_s")
        try:
            reply = agent.request_blocking(self._sock, agent.REQ_FILE, agent.FILE.pack(op, whence, arg) + data,
                                           timeout)
        except agent.AgentError as exc:
            raise OSError(exc.errno, str(exc)) from None
        except agent.AgentGone as exc:
            raise OSError(errno.EPIPE, f"the sandbox's init no longer holds the file ({exc}): the sandbox ended") \
                from None
        if reply is None:
            raise TimeoutError(errno.ETIMEDOUT, f"the sandbox's init did not answer within {timeout} s "
                               f"({bounds.variable('file_relay_s')})")
        return reply.body

    def _count(self, op: int, arg: int = 0, whence: int = 0, data: bytes = b"") -> int:
        body = self._call(op, arg, whence, data)
        if len(body) != agent.COUNT.size:
            raise OSError(errno.EPROTO, f"malformed file reply from init: {len(body)} bytes")
        return agent.COUNT.unpack(body)[0]

    def _read_chunk(self, size: int, op: int = agent.FILE_READ) -> bytes:
        size = min(size, agent.FILE_CHUNK)
        data = self._call(op, size)
        if len(data) > size:
            raise OSError(errno.EPROTO, f"init sent {len(data)} bytes for a read of {size}")
        return data

    def read(self, size: Optional[int] = -1) -> bytes:
        """`size` bytes, fewer only at the end of the file (a regular file's read); all of it if `size` < 0."""
        self._check_readable()
        chunks: List[bytes] = []
        left = -1 if size is None or size < 0 else size
        while left != 0:
            chunk = self._read_chunk(agent.FILE_CHUNK if left < 0 else left)
            if not chunk:
                break
            chunks.append(chunk)
            left = left if left < 0 else left - len(chunk)
        return b"".join(chunks)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def peek(self, size: int = 0) -> bytes:
        """Bytes ahead without moving the offset: IOBase.readline uses it to read a line in chunks."""
        self._check_readable()
        return self._read_chunk(max(size, agent.FILE_CHUNK), agent.FILE_PEEK)

    def write(self, data) -> int:
        if not self._writable:
            raise io.UnsupportedOperation("not writeable")
        chunk = bytes(memoryview(data).cast("B")[:agent.FILE_CHUNK])
        return self._count(agent.FILE_WRITE, data=chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._count(agent.FILE_SEEK, offset, whence)

    def tell(self) -> int:
        return self.seek(0, io.SEEK_CUR)

    def _check_readable(self) -> None:
        if not self._readable:
            raise io.UnsupportedOperation("not readable")

    def close(self) -> None:
        if not self.closed:
            self._sock.close()
        super().close()
