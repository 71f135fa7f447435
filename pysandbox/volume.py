"""Volumes: directories in the state directory, bind-mounted into sandboxes (Modal's Volume API).

A volume is `volumes/<name>/` holding `meta.json` and `data/` (kept by _state/volumes.py). Mounted
read-write (or read-only) at a path of the sandbox; several sandboxes may
mount it at once and see each other's writes at once, so `commit()` only makes
the data durable and `reload()` has nothing to fetch. Host-side operations
(listdir, read_file, batch_upload, ...) go through the tree operations of
_beneath.py, which resolve every path inside `data/` with openat2(RESOLVE_IN_ROOT):
a symlink planted by sandbox code never leads to a host file. For a root caller,
files uploaded from the host are given to the sandbox's unprivileged uid
(`_adopt`), so sandboxes can change them.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat as stat_module
from pathlib import Path, PurePosixPath
from typing import Any, AsyncIterator, Callable, Iterator, List, Optional, Tuple, Union

from . import _aio, _beneath
from ._aio import context, static_context, synchronized, synchronized_static
from ._core.spec import Bind
from ._state import files
from ._state import volumes as store
from ._validate import flag
from .exception import AlreadyExistsError, InvalidError, NotFoundError, UnimplementedError
from .runtime.layout import host_read_only_dirs
from .types import FileEntry, VolumeInfo
from .types import FileEntryType as FileEntryType  # Modal's home of it (modal.volume)

_adopt = files.give_to_sandbox_owner  # who owns what the host writes in a volume: sandboxes must change it


class _VolumeManager:
    """`Volume.objects`: create, delete and list named volumes. `environment_name`, `client`, `version`
    (Modal's storage format) and `experimental_options` concern Modal's service: accepted, no local meaning."""

    @synchronized_static
    async def create(name: str, *, version: Optional[int] = None, allow_existing: bool = False,
                     environment_name: Optional[str] = None, client: Any = None,
                     experimental_options: Optional[dict] = None) -> None:
        if not store.create(name) and not allow_existing:
            raise AlreadyExistsError(f"Volume {name!r} already exists")

    @synchronized_static
    async def delete(name: str, *, allow_missing: bool = False, environment_name: Optional[str] = None,
                     client: Any = None) -> None:
        if not store.delete(name) and not allow_missing:
            raise NotFoundError(f"Volume {name!r} not found")

    @synchronized_static
    async def list(*, max_objects: Optional[int] = None, created_before: Any = None, environment_name: str = "",
                   client: Any = None) -> List["Volume"]:
        if created_before is not None:
            raise UnimplementedError("Volume.objects.list(created_before=...) is not supported by pysandbox")
        return [Volume.from_name(name) for name in store.volume_names()[:max_objects]]


class Volume:
    """A persistent directory for sandboxes: `Volume.from_name("my-volume", create_if_missing=True)`."""

    objects = _VolumeManager()

    def __init__(self, name: Optional[str], volume_id: Optional[str] = None, create_if_missing: bool = False,
                 read_only: bool = False, sub_path: Optional[str] = None) -> None:
        self._name, self._volume_id, self._create_if_missing = name, volume_id, create_if_missing
        self._read_only, self._sub_path = read_only, sub_path

    @staticmethod
    def from_name(name: str, *, environment_name: Optional[str] = None, create_if_missing: bool = False,
                  version: Optional[int] = None, create_options: Any = None, client: Any = None) -> "Volume":
        """A reference, checked when first used (NotFoundError then, unless create_if_missing)."""
        return Volume(store.check_name(name), create_if_missing=flag(create_if_missing, "create_if_missing"))

    @staticmethod
    def from_id(volume_id: str, client: Any = None) -> "Volume":
        if not isinstance(volume_id, str) or not files.is_well_formed_id(volume_id, "vo-"):
            raise InvalidError(f"Invalid volume id {volume_id!r}")
        return Volume(None, volume_id)

    @static_context
    def ephemeral(client: Any = None, environment_name: Optional[str] = None, version: Any = None,
                  create_options: Any = None, _heartbeat_sleep: float = 300) -> Iterator["Volume"]:
        """An anonymous volume that exists only inside the `with` block. Modal keeps its volume alive with a
        heartbeat every `_heartbeat_sleep` seconds; a local one lives until the block ends, with none."""
        with store.ephemeral() as meta:
            yield Volume(None, meta["volume_id"])

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
            directory = store.path(self._name)
            if not directory.exists():
                if not self._create_if_missing:
                    raise NotFoundError(f"Volume {self._name!r} not found; pass create_if_missing=True to create it "
                                        f"(or run `pysandbox volume create {self._name}`).")
                store.create(self._name)  # unless another caller just did
            return directory
        directory = store.find_by_id(self._volume_id)
        if directory is None:
            raise NotFoundError(f"Volume {self._volume_id} not found")
        return directory

    def _meta(self) -> dict:
        return store.read_meta(self._directory())

    def bind(self, path: str) -> Bind:
        """How a sandbox mounts this volume at `path`: its data directory, or the sub_path in it
        (made first). Sandboxes write the volume, so the sub_path is opened without following any
        symlink, and the mount is tied to that directory's identity (spec.Bind)."""
        data = self._directory() / "data"
        relative = "/".join(part for part in (self._sub_path or "").split("/") if part not in ("", "."))
        with self._root() as root:
            if relative:
                _beneath.make_dirs(root, relative, _adopt)
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
            yield from _beneath.entries(root, path, recursive)

    @synchronized
    async def read_file(self, path: str) -> AsyncIterator[bytes]:
        """The file's bytes, in chunks: only a regular file, and only what it held when opened."""
        _check_path(path)
        with self._root() as root:
            fd, size = _beneath.open_file(root, path, "file_copy")
        try:
            offset = 0
            while offset < size:
                chunk = os.pread(fd, min(_beneath.CHUNK, size - offset), offset)
                if not chunk:
                    return  # it shrank meanwhile
                offset += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    @synchronized
    async def read_file_into_fileobj(self, path: str, fileobj: Any, progress_cb: Optional[Callable] = None) -> int:
        """Copy the file into `fileobj` (anything with write(bytes)); returns the byte count.
        `progress_cb(advance=n)` is called after each chunk, as Modal's CLI progress bars expect."""
        written = 0
        async for chunk in Volume.read_file.__wrapped__(self, path):
            fileobj.write(chunk)
            written += len(chunk)
            if progress_cb is not None:
                progress_cb(advance=len(chunk))
            await _aio.checkpoint()
        return written

    @synchronized
    async def remove_file(self, path: str, recursive: bool = False) -> None:
        _check_path(path)
        flag(recursive, "recursive")
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
                if recursive and _beneath.is_link(root, src):  # `cp -r` copies a link it is given as a link
                    _beneath.copy_link(root, src, target, _adopt)
                    continue
                if not _beneath.is_dir(root, src):
                    fd, size = _beneath.open_file(root, src, "file_copy")
                    try:
                        _beneath.write_file(root, target, fd, None, force=True, adopt=_adopt, size=size)
                    finally:
                        os.close(fd)
                    continue
                if not recursive:
                    raise IsADirectoryError(f"{src} is a directory; pass recursive=True to copy it")
                if f"/{target.strip('/')}/".startswith(f"/{src.strip('/')}/"):
                    raise InvalidError(f"Cannot copy directory {src} into itself ({target})")
                _beneath.copy_tree(root, src.strip("/"), target.strip("/"), _adopt)

    def _is_dir(self, path: str) -> bool:
        with self._root() as root:
            return _beneath.is_dir(root, path)

    @context
    def batch_upload(self, force: bool = False) -> Iterator["_Uploader"]:
        """Files queued with put_file / put_directory are written when the block exits."""
        self._writable()
        uploader = _Uploader()
        yield uploader
        with self._root() as root:
            for local, remote, mode in uploader.files:
                if hasattr(local, "read"):  # a file object
                    _beneath.write_file(root, remote, local, mode, force, _adopt)
                    continue
                with open(local, "rb") as source:
                    info = os.fstat(source.fileno())
                    # Modal: a local file keeps its own mode (a script stays executable); never set-id bits here.
                    _beneath.write_file(root, remote, source.fileno(), info.st_mode & 0o777 if mode is None else mode,
                                        force, _adopt, size=info.st_size)

    @synchronized_static
    async def rename(old_name: str, new_name: str, *, client: Any = None,
                     environment_name: Optional[str] = None) -> None:
        store.rename(old_name, new_name)

    def __repr__(self) -> str:
        return f"Volume({self._name or self._volume_id!r})"


def _check_path(path: Any) -> None:
    if not isinstance(path, str) or "\0" in path:
        raise InvalidError(f"A path in a volume must be a str without NUL bytes, got {path!r}")


# Modal's rule (validate_mount_points): these themselves, and any path that is not canonical.
_MODAL_REFUSED = {"/": "cannot be mounted into root directory.", "/root": "cannot be mounted at '/root'.",
                  "/tmp": "cannot be mounted at '/tmp'."}
# What pysandbox mounts itself, at and under each (Modal's sandboxes hide them from volumes too).
_KERNEL_DIRS = ("/proc", "/sys", "/dev")
_CONTROL_DIR = "/__pysandbox"  # sandbox-init, the probe, the bin directory: the sandbox's control path


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def mount_point(raw_path: Any, what: str = "Volume", host_image: bool = True) -> str:
    """`raw_path` as a mount point of a `what`, canonical; InvalidError naming it otherwise.
    Modal's rule, plus what only a local sandbox has: the kernel's directories, its control
    path and, on the host image, the host's read-only directories (no mount point can be made there)."""
    path = os.fspath(raw_path) if isinstance(raw_path, os.PathLike) else raw_path
    if not isinstance(path, str):
        raise InvalidError(f"{what} mount paths must be str or PurePosixPath, got {raw_path!r}")
    if "\0" in path:
        raise InvalidError(f"{what} mount path {path!r} must not contain NUL bytes.")
    path = str(PurePosixPath(path))
    if not path.startswith("/") or posixpath.normpath(path) != path:
        raise InvalidError(f"{what} {path} must be a canonical, absolute path.")
    path = "/" + path.lstrip("/")  # POSIX keeps "//a" as it is; it is "/a"
    if path in _MODAL_REFUSED:
        raise InvalidError(f"{what} {path} {_MODAL_REFUSED[path]}")
    for top in _KERNEL_DIRS:
        if _under(path, top):
            raise InvalidError(f"{what} {path} cannot be mounted under {top}: the sandbox's {top} is the kernel's "
                               "(pysandbox mounts it). Mount it elsewhere, e.g. /data or /mnt/<name>.")
    if _under(path, _CONTROL_DIR):
        raise InvalidError(f"{what} {path} cannot be mounted under {_CONTROL_DIR}: it holds the sandbox's init. "
                           "Mount it elsewhere, e.g. /data or /mnt/<name>.")
    shared = next((top for top in host_read_only_dirs() if _under(path, top)), None) if host_image else None
    if shared is not None:
        raise InvalidError(f"{what} {path} cannot be mounted on the host image: {shared} is the host's own, shared "
                           "read-only, so no mount point can be made in it. Mount it elsewhere (e.g. /data, "
                           f"/mnt/<name>, /tmp/<name>), or start the sandbox from an image (image=...), whose "
                           f"{shared} is the sandbox's own.")
    return path


def mount_plan(volumes, host_image: bool = True) -> Tuple[Bind, ...]:
    """The validated binds of create(volumes=...); `host_image`: no image= (see mount_point)."""
    if not volumes:
        return ()
    if not isinstance(volumes, dict):
        raise InvalidError("volumes must be a dict of absolute paths to pysandbox.Volume objects")

    plan, seen = [], set()
    for raw_path, volume in volumes.items():
        path = mount_point(raw_path, host_image=host_image)
        if not isinstance(volume, Volume):
            raise InvalidError(f"Object of type {type(volume).__name__} mounted at '{path}' is not usable as a "
                               "volume: pass a pysandbox.Volume.")
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

