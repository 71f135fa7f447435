"""Opening paths inside a directory tree that sandbox code can write to, and the tree
operations built on it (listing, making directories, writing and copying files and links).

A volume's files are written by sandboxes, so any component of a path may be
a symlink planted to point at a host file. openat2(RESOLVE_IN_ROOT) resolves
the whole path as if the directory were "/": symlinks and ".." can never
leave it, whatever the tree holds. Every operation below works one directory fd
at a time, by name in that directory, and never follows a symlink it finds.

What the host makes in such a tree is handed to an `adopt` callable, as adopt(fd) or
adopt(name, dir_fd=parent) (a symlink itself, never what it points to): the caller's
choice of owner (volume.py passes _state.files.give_to_sandbox_owner, so sandboxes can
change what the host wrote). This module is a leaf and imports no state.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import secrets
import shutil
import stat
import struct
from typing import Callable, Iterator, Optional, Tuple

from . import bounds
from .types import FileEntry, FileEntryType

_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}.get(platform.machine())
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


_RESOLVE_RETRIES = 64  # openat2 attempts when the host's renames race a ".." (EAGAIN)
_PATH_CHUNK = 2048  # bytes of path resolved per openat2 call on a deeper path (PATH_MAX is 4096)
CHUNK = 1 << 20  # bytes per read or write of a file's content

Adopt = Callable[..., None]  # adopt(fd) or adopt(name, dir_fd=parent): see the module's docstring


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0o644, *, symlinks: bool = True) -> int:
    """An fd for `path` resolved inside `root_fd` (never outside it). symlinks=False: any
    symlink on the way is an error (ELOOP), for a path the host hands on to be resolved again.
    A path longer than the kernel takes (a sandbox can nest directories without end) is
    resolved a chunk at a time, each inside the directory the last one reached."""
    parts = path.split("/")
    anchor = root_fd
    try:
        while len(path) > _PATH_CHUNK and len(parts) > 1:
            taken, size = 0, 0
            while taken < len(parts) - 1 and size + len(parts[taken]) + 1 <= _PATH_CHUNK:
                size += len(parts[taken]) + 1
                taken += 1
            taken = max(taken, 1)
            following = _openat2(anchor, "/".join(parts[:taken]) or ".", os.O_PATH | os.O_DIRECTORY, 0, symlinks)
            if anchor != root_fd:
                os.close(anchor)
            anchor, parts = following, parts[taken:]
            path = "/".join(parts)
        return _openat2(anchor, path, flags, mode, symlinks)
    finally:
        if anchor != root_fd:
            os.close(anchor)


def _openat2(root_fd: int, path: str, flags: int, mode: int, symlinks: bool) -> int:
    if _SYS_OPENAT2 is None:
        raise OSError(f"openat2 is not known on {platform.machine()}; volumes need it")
    resolve = _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS | (0 if symlinks else _RESOLVE_NO_SYMLINKS)
    how = struct.pack("=QQQ", flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    # EAGAIN: a rename or mount anywhere on the host while the walk took a "..", so the kernel
    # could not prove it stayed inside; it asks for a retry. Bounded: a sandbox renaming in a
    # loop gets an error for its own tree, never a host thread spinning.
    for _ in range(_RESOLVE_RETRIES):
        fd = _libc.syscall(_SYS_OPENAT2, root_fd, os.fsencode(path), how, len(how))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            break
    raise OSError(err, os.strerror(err), path)


def open_file(root_fd: int, path: str, bound: str, flags: int = 0) -> Tuple[int, int]:
    """(fd, size) of the regular file `path` inside `root_fd`, for reading. Sandboxes write this
    tree: a FIFO would block the open (so it is non-blocking), a device never end, a sparse file
    of a terabyte fill the host's disk; anything but a regular file within the bound named
    `bound` (bounds.py) is refused. Readers take only the `size` bytes it held when opened."""
    limit = bounds.get(bound)
    fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_NONBLOCK | flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)", path)
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"{info.st_size} bytes, over the {limit} byte limit ({bounds.variable(bound)})",
                          path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def walk(root_fd: int, path: str = "", recursive: bool = True,
         skip_unreadable: bool = False) -> Iterator[Tuple[str, os.stat_result, int, str]]:
    """(path from the root, lstat, its directory's fd, its name) for everything below `path`
    in `root_fd` (only its own entries unless `recursive`), a directory's entries sorted and
    before what lies below them. Sandboxes may be
    changing the tree: every directory is opened beneath the root with no symlink on the way,
    one at a time (any depth, no recursion); the fd is valid until the next item.
    skip_unreadable: pass over directories below `path` this process may not read (a rootless
    caller's, owned by another of its sandbox ids) instead of raising PermissionError."""
    pending = [path.strip("/")]
    while pending:
        current = pending.pop()
        try:
            fd = open_in_root(root_fd, current or ".", os.O_RDONLY | os.O_DIRECTORY, symlinks=False)
        except OSError as exc:
            below_top = current != path.strip("/")
            if below_top and (exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP) or
                              (skip_unreadable and exc.errno == errno.EACCES)):
                continue  # changed since it was listed, or not ours to read
            raise
        try:
            below = []
            for name in sorted(os.listdir(fd)):
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                relative = f"{current}/{name}" if current else name
                yield relative, info, fd, name
                if recursive and stat.S_ISDIR(info.st_mode):
                    below.append(relative)
        finally:
            os.close(fd)
        pending.extend(reversed(below))


@contextlib.contextmanager
def replacing(dir_fd: int, name: str, mode: int = 0o644, clobber: bool = True) -> Iterator[int]:
    """A new file for writing whose content becomes `name` in `dir_fd` when the block succeeds
    (replacing whatever is there, or FileExistsError without `clobber`), and vanishes otherwise,
    even if this process is killed: an unnamed O_TMPFILE, linked in at the end (a named temporary
    file where the file system has none). Never opens what is at `name`: a FIFO a sandbox put there
    cannot block the writer, nor a symlink redirect it."""
    temp: Optional[str] = None
    try:
        fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
        temp = f".pysandbox-{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        yield fd
        if temp is None:  # the dir fd makes os.link use linkat, which follows the /proc link
            temp = f".pysandbox-{secrets.token_hex(8)}"
            os.link(f"/proc/self/fd/{fd}", temp, dst_dir_fd=dir_fd, follow_symlinks=True)
        if clobber:
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)  # fails if it exists
            os.unlink(temp, dir_fd=dir_fd)
        temp = None
    finally:
        os.close(fd)
        if temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=dir_fd)


@contextlib.contextmanager
def replacing_path(path: str) -> Iterator[int]:
    """replacing() for a path of the caller's own (its directory is trusted)."""
    directory, name = os.path.split(path)
    dir_fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with replacing(dir_fd, name) as fd:
            yield fd
    finally:
        os.close(dir_fd)


def parent_and_name(root_fd: int, path: str):
    """(fd of the parent directory, last component) for *at() calls on `path`."""
    parent, _, name = path.strip("/").rpartition("/")
    if not name or name in (".", ".."):
        raise IsADirectoryError(f"{path!r} names no file")
    return open_in_root(root_fd, parent or ".", os.O_RDONLY | os.O_DIRECTORY), name


# Tree operations: volume.py's host side of a volume ------------------------------------------


def entry_type(mode: int) -> FileEntryType:
    for test, kind in ((stat.S_ISREG, FileEntryType.FILE), (stat.S_ISDIR, FileEntryType.DIRECTORY),
                       (stat.S_ISLNK, FileEntryType.SYMLINK), (stat.S_ISFIFO, FileEntryType.FIFO),
                       (stat.S_ISSOCK, FileEntryType.SOCKET)):
        if test(mode):
            return kind
    return FileEntryType.UNSPECIFIED


def entries(root_fd: int, path: str, recursive: bool) -> Iterator[FileEntry]:
    """FileEntry of everything below `path` (walk()), or of `path` alone if it is no directory."""
    fd = open_in_root(root_fd, path or "/", os.O_RDONLY | os.O_PATH)
    try:
        info = os.stat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISDIR(info.st_mode):
        yield FileEntry(path.strip("/"), entry_type(info.st_mode), int(info.st_mtime), info.st_size)
        return
    yield from _entries_below(root_fd, path.strip("/"), recursive)


def _entries_below(root_fd: int, path: str, recursive: bool) -> Iterator[FileEntry]:
    for relative, info, _, _ in walk(root_fd, path, recursive):
        yield FileEntry(relative, entry_type(info.st_mode), int(info.st_mtime), info.st_size)


def make_dirs(root_fd: int, path: str, adopt: Adopt) -> None:
    """`path` and its parents, made where missing."""
    current = ""
    for part in [p for p in path.split("/") if p]:
        current = f"{current}/{part}"
        make_dir(root_fd, current, adopt)


def make_dir(root_fd: int, path: str, adopt: Adopt) -> None:
    """`path`, made if missing, in a parent that exists."""
    parent, name = parent_and_name(root_fd, path)
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
        adopt(name, dir_fd=parent)
    except FileExistsError:
        pass
    finally:
        os.close(parent)


def is_dir(root_fd: int, path: str) -> bool:
    try:
        fd = open_in_root(root_fd, path, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return False
    os.close(fd)
    return True


def is_link(root_fd: int, path: str) -> bool:
    parent, name = parent_and_name(root_fd, path)
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    finally:
        os.close(parent)


def write_file(root_fd: int, remote: str, source, mode: Optional[int], force: bool, adopt: Adopt,
               size: Optional[int] = None) -> None:
    """Copy `source` (an fd, of which the first `size` bytes, or a file object) to `remote`
    inside the tree, its parents made first."""
    parent_path = remote.strip("/").rpartition("/")[0]
    if parent_path:
        make_dirs(root_fd, parent_path, adopt)
    parent, name = parent_and_name(root_fd, remote)
    try:
        with replacing(parent, name, 0o644 if mode is None else mode, clobber=force) as fd:
            if isinstance(source, int):
                offset = 0
                while offset < size and (sent := os.sendfile(fd, source, offset, size - offset)):
                    offset += sent
            else:
                with open(fd, "wb", closefd=False) as target:
                    shutil.copyfileobj(source, target, CHUNK)
            if mode is not None:
                os.fchmod(fd, mode)
            adopt(fd)
    except FileExistsError:
        raise FileExistsError(f"{remote} exists in the volume; pass force=True to overwrite it "
                              "(`pysandbox volume put --force`)") from None
    finally:
        os.close(parent)


def copy_tree(root_fd: int, src: str, dst: str, adopt: Adopt) -> None:
    """`src` as `dst`, as `cp -r` would: links copied as links, only regular files' content
    (within file_copy), anything else left out."""
    make_dirs(root_fd, dst, adopt)
    for entry in list(_entries_below(root_fd, src, True)):
        target = dst + entry.path[len(src):]
        if entry.type == FileEntryType.DIRECTORY:
            make_dir(root_fd, target, adopt)  # its parent came first (walk lists a directory before what it holds)
        elif entry.type == FileEntryType.FILE:
            fd, size = open_file(root_fd, entry.path, "file_copy", os.O_NOFOLLOW)
            try:
                write_file(root_fd, target, fd, None, force=True, adopt=adopt, size=size)
            finally:
                os.close(fd)
        elif entry.type == FileEntryType.SYMLINK:
            copy_link(root_fd, entry.path, target, adopt)


def copy_link(root_fd: int, src: str, dst: str, adopt: Adopt) -> None:
    """The symlink `src` (never what it points to) as `dst`, replacing what is there."""
    source_parent, source_name = parent_and_name(root_fd, src)
    try:
        link = os.readlink(source_name, dir_fd=source_parent)
    finally:
        os.close(source_parent)
    parent, name = parent_and_name(root_fd, dst)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent)
        os.symlink(link, name, dir_fd=parent)
        adopt(name, dir_fd=parent)
    finally:
        os.close(parent)
