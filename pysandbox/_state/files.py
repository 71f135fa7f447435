"""Generic state-directory I/O: ids, atomic JSON files, validated reads, directories, tree removal,
handing a path to the sandbox owner.

Every write is atomic (temp file, checked write, fsync where the data must survive a
crash, rename), so a reader sees the old or the new file, never a torn one; a write that
fails leaves the old file and raises. Every read is validated: a file that cannot be
parsed raises an error naming it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import stat
import string
import subprocess
import threading
from pathlib import Path
from typing import Any, List, Optional, Union

from .. import identity, settings
from ..exception import Error, ExecutionError, InvalidError, ResourceExhaustedError

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 22
_ID_BYTE_LIMIT = 256 // len(_ID_ALPHABET) * len(_ID_ALPHABET)


def new_id(prefix: str) -> str:
    """`prefix` and _ID_LENGTH characters of _ID_ALPHABET, uniformly at random, from one read of the
    kernel's random bytes (secrets.choice made a system call per character, 22 per create)."""
    chars: List[str] = []
    while len(chars) < _ID_LENGTH:
        # Only bytes below a multiple of the alphabet's size, so that every character is equally likely.
        chars += [_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in secrets.token_bytes(2 * _ID_LENGTH)
                  if b < _ID_BYTE_LIMIT]
    return prefix + "".join(chars[:_ID_LENGTH])


def is_well_formed_id(object_id: Any, prefix: str) -> bool:
    if not isinstance(object_id, str):
        return False
    body = object_id[len(prefix):]
    # isascii() and isalnum(): exactly _ID_ALPHABET, without a Python step per character.
    return object_id.startswith(prefix) and len(body) == _ID_LENGTH and body.isascii() and body.isalnum()


# Atomic files -----------------------------------------------------------------


def write_json_atomic(path: Path, data: Any, mode: int = 0o644, durable: bool = True) -> None:
    """write_atomic() of `data` as JSON."""
    write_atomic(path, json.dumps(data, sort_keys=True).encode(), mode, durable)


def write_atomic(path: Path, payload: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `payload`: readers see the old or the new content, never a mix.

    `durable` fsyncs the file before the rename and the directory after it; `durable=False`
    skips both for state that cannot outlive a host crash anyway (a running sandbox's
    record), which would otherwise cost a millisecond per create. Any failure (a full or
    read-only disk) leaves the old file in place, removes the temporary file and raises
    ResourceExhaustedError (no space) or ExecutionError naming the file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            write_all(fd, payload)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise
    if durable:
        _fsync_directory(path.parent)


def write_all(fd: int, data: bytes) -> None:
    """os.write until all of `data` is written: a write may be short (a nearly full disk, a signal)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def write_error(path: Path, exc: OSError) -> Error:
    """The error for a state file that could not be written."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ResourceExhaustedError(f"Cannot write {path}: {exc.strerror}. Free space on its disk "
                                      "(`pysandbox gc` removes the state of finished sandboxes).")
    return ExecutionError(f"Cannot write {path}: {exc.strerror or exc}.")


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # the file is in place; only its surviving a host crash is uncertain
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_whole(path: Union[str, Path]) -> bytes:
    """A file's bytes, with plain os calls: Sandbox.list() reads a few small files per sandbox,
    and a buffered file object costs more to set up than the read itself."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: List[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_json(path: Union[str, Path], what: str) -> dict:
    try:
        data = json.loads(read_whole(path))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ExecutionError(f"{what} record {path} is unreadable or corrupt ({exc}); "
                             "run `pysandbox gc` to remove it.") from None
    if not isinstance(data, dict):
        raise ExecutionError(f"{what} record {path} is corrupt (not a JSON object); run `pysandbox gc` to remove it.")
    return data


_private_roots: set = set()  # state directories this process has made private
_private_roots_lock = threading.Lock()


def ensure_dir(path: Path, mode: int = 0o700) -> Path:
    """`path` (in the state directory) and its parents."""
    root = private_state_dir()
    if not _still_private(root):
        # Removed since this process made it private (a reset by hand), and made again by someone, or
        # missing: made private, or refused, again before anything goes in it.
        with _private_roots_lock:
            _private_roots.discard(str(root))
        private_state_dir()
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    return path


def _still_private(root: Path) -> bool:
    try:
        info = os.stat(root)  # as _make_private checks it
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077


def private_state_dir() -> Path:
    """The state directory, private to its owner (0700): nothing in it is any other local user's
    business (volumes, layers, records, names, sockets). A sandbox's identity reaches what it
    needs through the supervisor's staged binds (runtime/launch.Stager), never through it."""
    root = settings.state_dir()
    if str(root) in _private_roots:
        return root
    with _private_roots_lock:  # once per process, also when threads create at once
        if str(root) not in _private_roots:
            _make_private(root)
            _private_roots.add(str(root))
    return root


def _make_private(root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        info = os.stat(root)
        if info.st_uid != os.geteuid():
            raise InvalidError(f"The state directory {root} (PYSANDBOX_HOME) belongs to uid {info.st_uid}, not to "
                               "this process: its owner could change the layers, volumes and records pysandbox "
                               "trusts. Point PYSANDBOX_HOME at a directory of your own.") from None
        if info.st_mode & 0o077:
            os.chmod(root, 0o700)  # made public by an earlier version
    identity.adopt_state(str(root))


def give_to_sandbox_owner(path: Union[str, Path, int], dir_fd: Optional[int] = None) -> None:
    """Make `path` (an open fd, or a path relative to `dir_fd`, a symlink itself and never
    what it points to) sandbox root's (settings.sandbox_owner()): what a sandbox must be able to
    write to, made by a root caller. An unprivileged caller is sandbox root (identity.current()),
    so what it makes is already the owner's: nothing to do."""
    if os.geteuid() != 0:
        return
    if isinstance(path, int):
        os.fchown(path, *settings.sandbox_owner())
    else:
        os.chown(path, *settings.sandbox_owner(), dir_fd=dir_fd, follow_symlinks=False)


# Checks of the values read from state files.


def is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def remove_tree(path: Path, dir_fd: Optional[int] = None) -> None:
    """Remove `path` (relative to `dir_fd`, if given) and everything below it. Sandboxes write
    these trees, and may still be changing them: sandbox-rmtree (native/common/rmtree.c) never follows a
    symlink, never leaves the tree's mount, gets through chmod 000 and any depth, where Python's
    rmtree works on path strings a sandbox can redirect. OSError saying what it could not remove."""
    if not os.path.lexists(path if dir_fd is None else f"/proc/self/fd/{dir_fd}/{path}") or _remove_flat(path, dir_fd):
        return
    ids = identity.current()  # an unprivileged caller removes its sandbox users' files in their namespace
    argv = [settings.native_binary("sandbox-rmtree"), *(ids.supervisor_args() if ids.newidmap else []),
            *(["--at", str(dir_fd)] if dir_fd is not None else []), str(path)]
    result = subprocess.run(argv, env=settings.HOST_ENV, pass_fds=() if dir_fd is None else (dir_fd,),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(errno.ENOTEMPTY, result.stderr.strip() or "sandbox-rmtree failed", str(path))


def _remove_flat(path: Path, dir_fd: Optional[int]) -> bool:
    """The common case without a process: a directory of files only (a finished sandbox's, once
    its supervisor removed the upper directory), each unlinked by the directory's fd, which no
    symlink can redirect. False, perhaps part done, for anything else: sandbox-rmtree's work."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        names = [entry.name for entry in os.scandir(fd) if not entry.is_dir(follow_symlinks=False)]
        for name in names:
            os.unlink(name, dir_fd=fd)
        os.rmdir(path, dir_fd=dir_fd)  # ENOTEMPTY: a directory in it
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
