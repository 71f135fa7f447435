"""An image's tree as overlayfs will show it, read from its layer directories by fd.

Image layers come from image authors (registry blobs, Dockerfile RUN steps, snapshots of
sandboxes), so any name in them may be a symlink aimed at a host path. A runner that makes a
mount point or a directory at a path of the image resolves it on the host, before the image is
the sandbox's root: an image with `/data -> /oldroot/home/user` would have it create directories
in the user's home. So every path the host hands a runner is first resolved here, as the
sandbox will see it: the image's symlinks followed inside the image (an absolute target starts
at the image's root, ".." stops there), never on the host. Every layer is read by fd, one
component at a time, with overlayfs's own rules: the topmost entry wins, a whiteout deletes, a
directory merges with the directories below it until an opaque one or a non-directory, and a
lower layer's symlink under an upper directory is never followed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import List, Optional, Sequence

import attrs

from .exception import InvalidError

MAX_SYMLINKS = 40  # the kernel's own limit on one resolution
_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _is_opaque(dir_fd: int) -> bool:
    for name in _OPAQUE:
        with contextlib.suppress(OSError):  # ENODATA; EPERM for trusted.* when unprivileged
            if os.getxattr(f"/proc/self/fd/{dir_fd}", name) == b"y":
                return True
    return False


@attrs.frozen
class Entry:
    mode: int  # its lstat st_mode
    target: Optional[str] = None  # a symlink's target


def _is_dir(entry: Optional[Entry]) -> bool:
    return entry is not None and stat.S_ISDIR(entry.mode)


class LayerView:
    """The merged tree of `layers` (directories, bottom first, as overlayfs stacks its lowers
    and upper). Use it as a context manager: it holds an fd per layer."""

    def __init__(self, layers: Sequence[str]) -> None:
        self._roots: List[int] = []
        self._hidden: List[List[str]] = []  # directories covered by a fresh mount: empty, whatever the image holds
        try:
            for layer in reversed(layers):  # top first
                self._roots.append(os.open(layer, _DIR_FLAGS))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        while self._roots:
            os.close(self._roots.pop())

    def __enter__(self) -> "LayerView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def hide(self, path: str) -> None:
        """From now on `path` (resolved) is empty, as a fresh mount over it (a runner's /tmp) shows it."""
        self._hidden.append([part for part in path.split("/") if part])

    def _covered(self, parts: Sequence[str]) -> bool:
        return any(len(parts) > len(top) and list(parts[:len(top)]) == top for top in self._hidden)

    def lookup(self, parts: Sequence[str]) -> Optional[Entry]:
        """The merged entry at `parts` (components free of symlinks, "." and ".."), or None
        where the image has nothing (or a file is on the way)."""
        live, opened = list(self._roots), []  # the directories merged at the current depth
        try:
            entry = None
            for index, name in enumerate(parts):
                if entry is not None and not stat.S_ISDIR(entry.mode):
                    return None
                entry, below = None, []
                for fd in live:
                    try:
                        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                    if _is_whiteout(info):
                        break
                    if not stat.S_ISDIR(info.st_mode):  # hides everything below, and ends a merge
                        if entry is None:
                            target = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(info.st_mode) else None
                            entry = Entry(info.st_mode, target)
                        break
                    entry = entry or Entry(info.st_mode)
                    if index + 1 < len(parts):
                        below.append(os.open(name, _DIR_FLAGS, dir_fd=fd))
                        opened.append(below[-1])
                        if _is_opaque(below[-1]):
                            break
                if entry is None:
                    return None
                live = below
            return entry
        finally:
            for fd in opened:
                os.close(fd)

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """`path` with the image's symlinks resolved inside the image, as the sandbox will see
        it: every component left is a directory of the image or missing (the last one may be
        anything, and with follow_last=False a symlink). InvalidError where the kernel would
        fail too: a symlink loop, or "." or ".." after a missing component or a file."""
        pending = [part for part in path.split("/") if part][::-1]  # the next component last
        current: List[str] = []
        hops = 0
        while pending:
            name = pending.pop()
            if name in (".", ".."):
                if current and not _is_dir(self.lookup(current)):  # as the kernel: ENOENT or ENOTDIR
                    raise InvalidError(f"Cannot resolve {path} in the image: /{'/'.join(current)} is not a "
                                       f"directory, so '{name}' names nothing.")
                current = current[:-1] if name == ".." else current
                continue
            entry = None if self._covered([*current, name]) else self.lookup([*current, name])
            if entry is not None and entry.target is not None and (pending or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise InvalidError(f"Too many symlinks resolving {path} in the image.")
                current = [] if entry.target.startswith("/") else current
                pending.extend(part for part in reversed(entry.target.split("/")) if part)
                continue
            current.append(name)
        return "/" + "/".join(current)
