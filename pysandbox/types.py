"""The data types the public API returns, as Modal keeps them in modal/types.py.

A leaf: it imports nothing of the package, so the modules that return these
types (filesystem, watch, file_io, volume, secret, resources) never import one
another for a type. Each type stays importable where Modal users find it too
(`pysandbox.FileInfo`, `pysandbox.file_io.FileWatchEvent`, ...).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import List, Optional

import attrs


class FileType(enum.Enum):
    """What `sb.filesystem.stat()` found at a path."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


@attrs.frozen
class FileInfo:
    """A path's metadata from `sb.filesystem.stat()` and `list_files()`."""

    name: str
    path: str
    type: FileType
    size: int
    mode: int
    permissions: str
    owner: str
    group: str
    modified_time: float
    symlink_target: Optional[str]

    def is_file(self) -> bool:
        return self.type == FileType.FILE

    def is_dir(self) -> bool:
        return self.type == FileType.DIRECTORY

    def is_symlink(self) -> bool:
        return self.type == FileType.SYMLINK


class FileWatchEventType(enum.Enum):
    Unknown = "Unknown"
    Access = "Access"
    Create = "Create"
    Modify = "Modify"
    Remove = "Remove"


@dataclasses.dataclass
class FileWatchEvent:
    """One change seen by a watch; a rename inside the watch has both paths."""

    paths: List[str]
    type: FileWatchEventType


class FileEntryType(enum.IntEnum):
    """The kind of a volume entry, numbered as Modal's protocol numbers it."""

    UNSPECIFIED = 0
    FILE = 1
    DIRECTORY = 2
    SYMLINK = 3
    FIFO = 4
    SOCKET = 5


@attrs.frozen
class FileEntry:
    """An entry of `Volume.listdir()` / `iterdir()`."""

    path: str
    type: FileEntryType
    mtime: int
    size: int


@attrs.frozen
class SandboxConnectCredentials:
    """What Sandbox.create_connect_token returns on Modal: a URL and the token to send it."""

    url: str
    token: str


@attrs.frozen
class VolumeInfo:
    name: Optional[str]
    volume_id: str
    created_at: float


@attrs.frozen
class SecretInfo:
    name: str
    created_at: float
    keys: List[str]


@attrs.frozen
class SandboxStats:
    """What a sandbox has used, from its cgroup (None where no cgroup could be made:
    an unprivileged caller on a cgroup v1 host). After the sandbox ends: the final
    cpu time, peak memory and out-of-memory kills; current memory and pids are 0."""

    cpu_seconds: Optional[float]
    memory_current: Optional[int]  # bytes
    memory_peak: Optional[int]  # bytes
    pids: Optional[int]
    oom_kills: Optional[int]
