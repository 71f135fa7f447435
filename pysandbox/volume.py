"""Volumes: directories in the state directory, bind-mounted into sandboxes.

A volume is `volumes/<name>/` holding `meta.json` and `data/`. Mounted
read-write (or read-only) at a path of the sandbox; several sandboxes may
mount it at once and see each other's writes at once, so `commit()` only makes
the data durable and `reload()` has nothing to fetch. Host-side operations
(listdir, read_file, batch_upload, ...) resolve every path inside `data/`
with openat2(RESOLVE_IN_ROOT): a symlink planted by sandbox code never leads
to a host file. For a root caller, files uploaded from the host are given to
the sandbox's unprivileged uid, so sandboxes can change them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat as stat_module
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, List, Optional, Tuple, Union

from . import _beneath, bounds, config
from ._aio import context, static_context, synchronized, synchronized_static
from ._core.spec import Bind
from ._state import files, names
from ._validate import is_object_name, object_name
from .exception import AlreadyExistsError, InvalidError, NotFoundError
from .runtime.layout import SYSTEM_DIRS
from .types import FileEntry, FileEntryType, VolumeInfo

_CREATING, _DELETING = ".tmp", ".deleted"  # suffixes of a volume directory on its way in or out
CHUNK = 1 << 20


def _volumes_dir() -> Path:
    return config.state_dir() / "volumes"


def _check_name(name: str) -> str:
    return object_name(name, "Volume", id_prefix="vo-")


def _create(directory: Path, name: Optional[str]) -> dict:
    meta = {"volume_id": files.new_id("vo-"), "name": name, "created_at": time.time()}
    tmp = directory.with_name(f".{directory.name}.{os.getpid()}.{secrets.token_hex(4)}{_CREATING}")
    try:
        (tmp / "data").mkdir(parents=True, mode=0o755)
        files.give_to_sandbox_owner(tmp / "data")
        files.write_json_atomic(tmp / "meta.json", meta)
        os.rename(tmp, directory)  # published whole, or not at all
    except BaseException as exc:
        with contextlib.suppress(OSError):
            files.remove_tree(tmp)  # a full disk leaves no half-made volume
        if isinstance(exc, OSError):
            raise files.write_error(tmp, exc) from None
        raise
    return meta


def leftovers() -> List[Path]:
    """Directories of volume creates and deletes that did not finish (a crash, a full disk)."""
    directory = _volumes_dir()
    names = os.listdir(directory) if directory.is_dir() else []
    return [directory / n for n in names if n.startswith(".") and n.endswith((_CREATING, _DELETING))]


def _entry_type(mode: int) -> FileEntryType:
    for test, kind in ((stat_module.S_ISREG, FileEntryType.FILE), (stat_module.S_ISDIR, FileEntryType.DIRECTORY),
                       (stat_module.S_ISLNK, FileEntryType.SYMLINK), (stat_module.S_ISFIFO, FileEntryType.FIFO),
                       (stat_module.S_ISSOCK, FileEntryType.SOCKET)):
        if test(mode):
            return kind
    return FileEntryType.UNSPECIFIED


class _VolumeManager:
    """`Volume.objects`: create, delete and list named volumes."""

    @synchronized_static
    async def create(name: str, *, allow_existing: bool = False, **_options) -> None:
        directory = _volumes_dir() / _check_name(name)
        files.ensure_dir(_volumes_dir())
        with names.locked():
            if directory.exists():
                if allow_existing:
                    return
                raise AlreadyExistsError(f"Volume {name!r} already exists")
            _create(directory, name)

    @synchronized_static
    async def delete(name: str, *, allow_missing: bool = False, **_options) -> None:
        directory = _volumes_dir() / _check_name(name)
        if not directory.exists():
            if allow_missing:
                return
            raise NotFoundError(f"Volume {name!r} not found")
        trash = directory.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}{_DELETING}")
        os.rename(directory, trash)  # gone at once for everyone, then removed
        files.remove_tree(trash)

    @synchronized_static
    async def list(*, max_objects: Optional[int] = None, **_options) -> List["Volume"]:
        directory = _volumes_dir()
        names = sorted(p.name for p in directory.iterdir() if is_object_name(p.name)) if directory.is_dir() else []
        return [Volume.from_name(name) for name in names[:max_objects]]


class Volume:
    """A persistent directory for sandboxes: `Volume.from_name("my-volume", create_if_missing=True)`."""

    objects = _VolumeManager()

    def __init__(self, name: Optional[str], volume_id: Optional[str] = None, create_if_missing: bool = False,
                 read_only: bool = False, sub_path: Optional[str] = None) -> None:
        self._name, self._volume_id, self._create_if_missing = name, volume_id, create_if_missing
        self._read_only, self._sub_path = read_only, sub_path

    @staticmethod
    def from_name(name: str, *, environment_name: Optional[str] = None, create_if_missing: bool = False,
                  version=None, create_options=None, client=None) -> "Volume":
        """A reference, checked when first used (NotFoundError then, unless create_if_missing)."""
        return Volume(_check_name(name), create_if_missing=create_if_missing)

    @staticmethod
    def from_id(volume_id: str, client=None) -> "Volume":
        if not isinstance(volume_id, str) or not files.is_well_formed_id(volume_id, "vo-"):
            raise InvalidError(f"Invalid volume id {volume_id!r}")
        return Volume(None, volume_id)

    @static_context
    def ephemeral(client=None, environment_name=None, version=None, create_options=None) -> Iterator["Volume"]:
        """An anonymous volume that exists only inside the `with` block."""
        files.ensure_dir(_volumes_dir())
        directory = _volumes_dir() / f"ephemeral-{files.new_id('')}"
        meta = _create(directory, None)
        try:
            yield Volume(None, meta["volume_id"])
        finally:
            files.remove_tree(directory)

    def with_mount_options(self, *, read_only: Optional[bool] = None, sub_path: Optional[str] = None) -> "Volume":
        if sub_path is not None and (not isinstance(sub_path, str) or sub_path.startswith("/")
                                     or ".." in sub_path.split("/")):
            raise InvalidError(f"sub_path must be a relative path inside the volume, got {sub_path!r}")
        return Volume(self._name, self._volume_id, self._create_if_missing,
                      self._read_only if read_only is None else read_only,
                      self._sub_path if sub_path is None else sub_path)

    def read_only(self) -> "Volume":
        return self.with_mount_options(read_only=True)

    @property
    def name(self) -> Optional[str]:
        return self._name

    @property
    def object_id(self) -> str:
        return self._meta()["volume_id"]

    # Resolution -------------------------------------------------------------

    def _directory(self) -> Path:
        if self._name is not None:
            directory = _volumes_dir() / self._name
            if not directory.exists():
                if not self._create_if_missing:
                    raise NotFoundError(f"Volume {self._name!r} not found; pass create_if_missing=True to create it.")
                Volume.objects.create(self._name, allow_existing=True)
            return directory
        for directory in (_volumes_dir().iterdir() if _volumes_dir().is_dir() else ()):
            try:
                if files.read_json(directory / "meta.json", "volume").get("volume_id") == self._volume_id:
                    return directory
            except (FileNotFoundError, NotADirectoryError):
                continue
        raise NotFoundError(f"Volume {self._volume_id} not found")

    def _meta(self) -> dict:
        return files.read_json(self._directory() / "meta.json", "volume")

    def bind(self, path: str) -> Bind:
        """How a sandbox mounts this volume at `path`: its data directory, or the sub_path in it
        (made first). Sandboxes write the volume, so the sub_path is opened without following any
        symlink, and the mount is tied to that directory's identity (spec.Bind)."""
        data = self._directory() / "data"
        relative = "/".join(part for part in (self._sub_path or "").split("/") if part not in ("", "."))
        with self._root() as root:
            if relative:
                _make_dirs(root, relative)
            try:
                fd = _beneath.open_in_root(root, relative or ".", os.O_PATH | os.O_DIRECTORY, symlinks=False)
            except OSError as exc:
                raise InvalidError(f"Volume {self!r} cannot be mounted with sub_path={self._sub_path!r}: "
                                   f"{exc.strerror} (it must be a directory, and no part of it a symlink)") from None
            try:
                info = os.fstat(fd)
            finally:
                os.close(fd)
        source = str(data / relative) if relative else str(data)
        return Bind(source, path, self._read_only, (info.st_dev, info.st_ino))

    @contextlib.contextmanager
    def _root(self) -> Iterator[int]:
        fd = os.open(self._directory() / "data", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    def _writable(self) -> None:
        if self._read_only:
            raise InvalidError("Read-only Volume can not be written to")

    # Operations -------------------------------------------------------------

    @synchronized
    async def commit(self) -> None:
        """Make everything written so far durable (sandboxes see writes at once anyway)."""
        with self._root() as root:
            os.fsync(root)
        os.sync()

    @synchronized
    async def reload(self) -> None:
        """Nothing to fetch: every mount is the same directory. Checks that the volume exists."""
        self._directory()

    @synchronized
    async def info(self) -> VolumeInfo:
        meta = self._meta()
        return VolumeInfo(meta["name"], meta["volume_id"], meta["created_at"])

    @synchronized
    async def listdir(self, path: str, *, recursive: bool = False) -> List[FileEntry]:
        return list(self._entries(path, recursive))

    @synchronized
    async def iterdir(self, path: str, *, recursive: bool = True) -> AsyncIterator[FileEntry]:
        for entry in self._entries(path, recursive):
            yield entry

    def _entries(self, path: str, recursive: bool) -> Iterator[FileEntry]:
        _check_path(path)
        if path.rstrip("/").endswith("*"):
            raise InvalidError("Glob patterns are not supported by listdir; pass a directory or a file path.")
        with self._root() as root:
            fd = _beneath.open_in_root(root, path or "/", os.O_RDONLY | os.O_PATH)
            try:
                info = os.stat(fd)
            finally:
                os.close(fd)
            if not stat_module.S_ISDIR(info.st_mode):
                yield FileEntry(path.strip("/"), _entry_type(info.st_mode), int(info.st_mtime), info.st_size)
                return
            yield from _walk(root, path.strip("/"), recursive)

    @synchronized
    async def read_file(self, path: str) -> AsyncIterator[bytes]:
        """The file's bytes, in chunks: only a regular file, and only what it held when opened."""
        _check_path(path)
        with self._root() as root:
            fd, size = _open_file(root, path)
        try:
            offset = 0
            while offset < size:
                chunk = os.pread(fd, min(CHUNK, size - offset), offset)
                if not chunk:
                    return  # it shrank meanwhile
                offset += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    @synchronized
    async def remove_file(self, path: str, recursive: bool = False) -> None:
        self._writable()
        with self._root() as root:
            parent, name = _beneath.parent_and_name(root, path)
            try:
                info = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if stat_module.S_ISDIR(info.st_mode):
                    if not recursive:
                        raise IsADirectoryError(f"{path} is a directory; pass recursive=True")
                    files.remove_tree(name, dir_fd=parent)  # a sandbox may be changing it meanwhile
                else:
                    os.unlink(name, dir_fd=parent)
            finally:
                os.close(parent)

    @synchronized
    async def copy_files(self, src_paths: List[str], dst_path: str, recursive: bool = False) -> None:
        """Copy inside the volume as `cp` (`cp -r` with recursive=True) would: into
        dst_path when it is a directory; symlinks are copied as links, never followed."""
        self._writable()
        if not isinstance(src_paths, (list, tuple)):
            raise InvalidError(f"src_paths must be a list of paths in the volume, got {type(src_paths).__name__}")
        for path in (*src_paths, dst_path):
            _check_path(path)
        into_dir = self._is_dir(dst_path)
        with self._root() as root:
            for src in src_paths:
                target = f"{dst_path.rstrip('/')}/{src.rstrip('/').rsplit('/', 1)[-1]}" if into_dir else dst_path
                if recursive and _is_link(root, src):  # `cp -r` copies a link it is given as a link
                    _copy_link(root, src, target)
                    continue
                if not _is_dir(root, src):
                    fd, size = _open_file(root, src)
                    try:
                        _write_file(root, target, fd, None, force=True, size=size)
                    finally:
                        os.close(fd)
                    continue
                if not recursive:
                    raise IsADirectoryError(f"{src} is a directory; pass recursive=True to copy it")
                if f"/{target.strip('/')}/".startswith(f"/{src.strip('/')}/"):
                    raise InvalidError(f"Cannot copy directory {src} into itself ({target})")
                _copy_tree(root, src.strip("/"), target.strip("/"))

    def _is_dir(self, path: str) -> bool:
        with self._root() as root:
            return _is_dir(root, path)

    @context
    def batch_upload(self, force: bool = False) -> Iterator["_Uploader"]:
        """Files queued with put_file / put_directory are written when the block exits."""
        self._writable()
        uploader = _Uploader()
        yield uploader
        with self._root() as root:
            for local, remote, mode in uploader.files:
                if hasattr(local, "read"):  # a file object
                    _write_file(root, remote, local, mode, force)
                    continue
                with open(local, "rb") as source:
                    _write_file(root, remote, source.fileno(), mode, force, size=os.fstat(source.fileno()).st_size)

    @staticmethod
    def rename(old_name: str, new_name: str, *, client=None, environment_name=None) -> None:
        old, new = _volumes_dir() / _check_name(old_name), _volumes_dir() / _check_name(new_name)
        with names.locked():
            if not old.exists():
                raise NotFoundError(f"Volume {old_name!r} not found")
            if new.exists():
                raise AlreadyExistsError(f"Volume {new_name!r} already exists")
            meta = files.read_json(old / "meta.json", "volume")
            files.write_json_atomic(old / "meta.json", {**meta, "name": new_name})
            os.rename(old, new)

    def __repr__(self) -> str:
        return f"Volume({self._name or self._volume_id!r})"


def _check_path(path: Any) -> None:
    if not isinstance(path, str) or "\0" in path:
        raise InvalidError(f"A path in a volume must be a str without NUL bytes, got {path!r}")


_NOT_MOUNTABLE = ("/", "/proc", "/dev", "/sys", "/tmp", "/__pysandbox")


def mount_plan(volumes) -> Tuple[Bind, ...]:
    """The validated binds of create(volumes=...)."""
    if not volumes:
        return ()
    if not isinstance(volumes, dict):
        raise InvalidError("volumes must be a dict of absolute paths to pysandbox.Volume objects")

    plan, seen = [], set()
    for raw_path, volume in volumes.items():
        path = os.fspath(raw_path) if isinstance(raw_path, os.PathLike) else raw_path
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/") or "\0" in path:
            raise InvalidError(f"Volume mount paths must be absolute, got {raw_path!r}")
        path = "/" + path.strip("/")
        top = "/" + path.split("/")[1]
        if path in _NOT_MOUNTABLE or top in _NOT_MOUNTABLE[1:] or top.lstrip("/") in SYSTEM_DIRS:
            raise InvalidError(f"A volume cannot be mounted at {path}: pick a path outside the system directories.")
        if not isinstance(volume, Volume):
            raise InvalidError(f"volumes[{path!r}] must be a pysandbox.Volume, got {type(volume).__name__}")
        if path in seen:
            raise InvalidError(f"Two volumes are mounted at {path}; give each its own path.")
        directory = volume._directory()  # NotFoundError now, before any work
        if directory in seen:
            raise InvalidError(f"Volume {volume!r} is mounted at two paths; mount each volume once.")
        seen.update((path, directory))
        plan.append(volume.bind(path))
    return tuple(plan)


class _Uploader:
    def __init__(self) -> None:
        self.files: List[tuple] = []

    def put_file(self, local_file: Union[str, Path, object], remote_path: str, mode: Optional[int] = None) -> None:
        if remote_path.endswith("/"):
            raise ValueError(f"remote_path {remote_path!r} ends with '/': give the file's full path")
        self.files.append((local_file, remote_path, mode))

    def put_directory(self, local_path: Union[str, Path], remote_path: str, recursive: bool = True) -> None:
        base = Path(local_path)
        for path in sorted(base.rglob("*") if recursive else base.glob("*")):
            if path.is_file():
                self.put_file(path, f"{remote_path.rstrip('/')}/{path.relative_to(base).as_posix()}")


def _make_dirs(root: int, path: str) -> None:
    current = ""
    for part in [p for p in path.split("/") if p]:
        current = f"{current}/{part}"
        _make_dir(root, current)


def _make_dir(root: int, path: str) -> None:
    """`path`, made if missing, in a parent that exists."""
    parent, name = _beneath.parent_and_name(root, path)
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
        files.give_to_sandbox_owner(name, dir_fd=parent)
    except FileExistsError:
        pass
    finally:
        os.close(parent)


def _open_file(root: int, path: str, flags: int = 0) -> Tuple[int, int]:
    return _beneath.open_file(root, path, bounds.get("file_copy"), bounds.variable("file_copy"), flags)


def _is_dir(root: int, path: str) -> bool:
    try:
        fd = _beneath.open_in_root(root, path, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return False
    os.close(fd)
    return True


def _write_file(root: int, remote: str, source, mode: Optional[int], force: bool, size: Optional[int] = None) -> None:
    """Copy `source` (an fd, of which the first `size` bytes, or a file object) to `remote`
    inside the volume."""
    parent_path = remote.strip("/").rpartition("/")[0]
    if parent_path:
        _make_dirs(root, parent_path)
    parent, name = _beneath.parent_and_name(root, remote)
    try:
        with _beneath.replacing(parent, name, 0o644 if mode is None else mode, clobber=force) as fd:
            if isinstance(source, int):
                offset = 0
                while offset < size and (sent := os.sendfile(fd, source, offset, size - offset)):
                    offset += sent
            else:
                with open(fd, "wb", closefd=False) as target:
                    shutil.copyfileobj(source, target, CHUNK)
            if mode is not None:
                os.fchmod(fd, mode)
            files.give_to_sandbox_owner(fd)
    except FileExistsError:
        raise FileExistsError(f"{remote} exists in the volume; pass force=True to overwrite it") from None
    finally:
        os.close(parent)


def _copy_tree(root: int, src: str, dst: str) -> None:
    _make_dirs(root, dst)
    for entry in list(_walk(root, src, True)):
        target = dst + entry.path[len(src):]
        if entry.type == FileEntryType.DIRECTORY:
            _make_dir(root, target)  # its parent came first (walk lists a directory before what it holds)
        elif entry.type == FileEntryType.FILE:
            fd, size = _open_file(root, entry.path, os.O_NOFOLLOW)
            try:
                _write_file(root, target, fd, None, force=True, size=size)
            finally:
                os.close(fd)
        elif entry.type == FileEntryType.SYMLINK:
            _copy_link(root, entry.path, target)


def _is_link(root: int, path: str) -> bool:
    parent, name = _beneath.parent_and_name(root, path)
    try:
        return stat_module.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    finally:
        os.close(parent)


def _copy_link(root: int, src: str, dst: str) -> None:
    source_parent, source_name = _beneath.parent_and_name(root, src)
    try:
        link = os.readlink(source_name, dir_fd=source_parent)
    finally:
        os.close(source_parent)
    parent, name = _beneath.parent_and_name(root, dst)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent)
        os.symlink(link, name, dir_fd=parent)
        files.give_to_sandbox_owner(name, dir_fd=parent)
    finally:
        os.close(parent)


def _walk(root: int, path: str, recursive: bool) -> Iterator[FileEntry]:
    for rel, info, _, _ in _beneath.walk(root, path, recursive):
        yield FileEntry(rel, _entry_type(info.st_mode), int(info.st_mtime), info.st_size)
