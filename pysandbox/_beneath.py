"""Opening paths inside a directory tree that sandbox code can write to.

A volume's files are written by sandboxes, so any component of a path may be
a symlink planted to point at a host file. openat2(RESOLVE_IN_ROOT) resolves
the whole path as if the directory were "/": symlinks and ".." can never
leave it, whatever the tree holds.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import secrets
import stat
import struct
from typing import Iterator, Optional, Tuple

_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}.get(platform.machine())
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


_RESOLVE_RETRIES = 64  # openat2 attempts when the host's renames race a ".." (EAGAIN)
_PATH_CHUNK = 2048  # bytes of path resolved per openat2 call on a deeper path (PATH_MAX is 4096)


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


def open_file(root_fd: int, path: str, bound: int, variable: str, flags: int = 0) -> Tuple[int, int]:
    """(fd, size) of the regular file `path` inside `root_fd`, for reading. Sandboxes write this
    tree: a FIFO would block the open (so it is non-blocking), a device never end, a sparse file
    of a terabyte fill the host's disk; anything but a regular file of at most `bound` bytes is
    refused. Readers take only the `size` bytes it held when opened."""
    fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_NONBLOCK | flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)", path)
        if info.st_size > bound:
            raise OSError(errno.EFBIG, f"{info.st_size} bytes, over the {bound} byte limit ({variable})", path)
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
