"""Watching paths inside a sandbox: `sb.filesystem.watch()` and Modal 1.5's `sb.watch()`.

The sandbox's init sets up the inotify watches inside the sandbox (the path
resolves there, never on the host) and hands us the inotify descriptor; we
read the kernel's events from it directly (under gVisor, from a socket a
process of init's relays them into). Under a recursive watch, a
directory created later gets its own watch (and descriptor) from init.
"""

from __future__ import annotations

import os
import posixpath
import struct
import time
from typing import AsyncIterator, Dict, List, Optional, Sequence, Tuple

from . import _aio
from ._core.initclient import InitClient
from ._validate import positive_seconds
from .exception import InvalidError
from .types import FileWatchEvent, FileWatchEventType

EVENT = struct.Struct("=iIII")
READ_SIZE = 64 * 1024
_IN_ACCESS, _IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x1, 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_Q_OVERFLOW, _IN_IGNORED, _IN_ISDIR = 0x400, 0x800, 0x4000, 0x8000, 0x40000000


def check_watch_args(filter: Optional[Sequence[FileWatchEventType]], timeout: Optional[float]) -> None:
    if filter is not None and (
        not isinstance(filter, (list, tuple, set, frozenset))
        or not all(isinstance(f, FileWatchEventType) for f in filter)
    ):
        raise InvalidError("filter must be a list of FileWatchEventType values, e.g. [FileWatchEventType.Modify]")
    positive_seconds(timeout, allow_none=True)


def event_type(mask: int) -> FileWatchEventType:
    """Modal's event type for an inotify mask (renames collapse into Modify)."""
    if mask & (_IN_DELETE | _IN_DELETE_SELF):
        return FileWatchEventType.Remove
    if mask & _IN_CREATE:
        return FileWatchEventType.Create
    if mask & (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_MOVE_SELF):
        return FileWatchEventType.Modify
    if mask & _IN_ACCESS:
        return FileWatchEventType.Access
    return FileWatchEventType.Unknown


def parse_events(data: bytes) -> List[Tuple[int, int, int, str]]:
    """(wd, mask, cookie, name) for each struct inotify_event in `data`."""
    events, offset = [], 0
    while offset + EVENT.size <= len(data):
        wd, mask, cookie, length = EVENT.unpack_from(data, offset)
        raw = data[offset + EVENT.size: offset + EVENT.size + length]
        events.append((wd, mask, cookie, os.fsdecode(raw.split(b"\0", 1)[0])))
        offset += EVENT.size + length
    return events


class _Watch:
    """The inotify descriptors for one watch() call and the paths their wds stand for."""

    def __init__(self, client: InitClient, recursive: bool) -> None:
        self.client, self.recursive = client, recursive
        self.paths: Dict[int, Dict[int, str]] = {}  # fd -> wd -> sandbox path

    async def add(self, path: str) -> None:
        fd, paths = await self.client.watch(path, self.recursive)
        self.paths[fd] = paths

    def close(self) -> None:
        for fd in self.paths:
            os.close(fd)
        self.paths.clear()

    async def events(self, fd: int) -> List[FileWatchEvent]:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return []
        if not data:  # a relayed watch (gVisor) whose relay ended with the sandbox: it has no more events
            os.close(fd)
            del self.paths[fd]
            return []
        result: List[FileWatchEvent] = []
        moved_from: Optional[Tuple[int, str]] = None  # (cookie, path) awaiting its IN_MOVED_TO
        for wd, mask, cookie, name in parse_events(data):
            if mask & _IN_Q_OVERFLOW:
                result.append(FileWatchEvent([], FileWatchEventType.Unknown))
                continue
            base = self.paths[fd].get(wd)
            if base is None:
                continue
            if mask & _IN_IGNORED:
                del self.paths[fd][wd]
                continue
            if mask & _IN_ACCESS and mask & _IN_ISDIR:
                continue  # a directory listed, e.g. by init setting up a recursive watch
            path = posixpath.join(base, name) if name else base
            if moved_from is not None and not (mask & _IN_MOVED_TO and cookie == moved_from[0]):
                result.append(FileWatchEvent([moved_from[1]], FileWatchEventType.Modify))
                moved_from = None
            if mask & _IN_MOVED_FROM:
                moved_from = (cookie, path)
                continue
            if moved_from is not None:  # the IN_MOVED_TO of a rename inside the watch
                result.append(FileWatchEvent([moved_from[1], path], FileWatchEventType.Modify))
                moved_from = None
            else:
                result.append(FileWatchEvent([path], event_type(mask)))
            if self.recursive and mask & _IN_ISDIR and mask & (_IN_CREATE | _IN_MOVED_TO):
                await self._add_quietly(path)
        if moved_from is not None:
            result.append(FileWatchEvent([moved_from[1]], FileWatchEventType.Modify))
        return result

    async def _add_quietly(self, path: str) -> None:
        try:
            await self.add(path)
        except OSError:
            pass  # removed again before init could watch it


async def watch_events(
    client: InitClient, path: str, filter: Optional[Sequence[FileWatchEventType]], recursive: bool,
    timeout: Optional[float],
) -> AsyncIterator[FileWatchEvent]:
    """Events on `path` (and below it, with `recursive`) until `timeout` seconds pass."""
    wanted = None if filter is None else set(filter)
    deadline = None if timeout is None else time.monotonic() + timeout
    watch = _Watch(client, recursive)
    try:
        await watch.add(path)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            if not watch.paths:
                return  # every relay ended (gVisor: the sandbox did)
            if not await _aio.readable(*watch.paths, timeout=left):
                continue
            for fd in list(watch.paths):
                for event in await watch.events(fd):
                    if wanted is None or event.type in wanted:
                        yield event
    finally:
        watch.close()
