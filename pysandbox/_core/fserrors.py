"""What a file in a sandbox can go wrong with, as Modal's two file APIs say it.

One table maps an errno (from init, or from reading or writing a file init
opened) to the exception of each API: Modal 1.5's OSError subclasses (sb.open,
FileIO, sb.ls/mkdir/rm/watch) and Modal 1.6's SandboxFilesystem* classes,
which are not OSErrors (sb.filesystem). InitClient raises the first;
filesystem.py turns them, and its own I/O errors, into the second here.
"""

from __future__ import annotations

import errno
import os
from typing import Optional

from ..exception import (
    ConflictError,
    NotFoundError,
    SandboxFilesystemDirectoryNotEmptyError,
    SandboxFilesystemError,
    SandboxFilesystemFileTooLargeError,
    SandboxFilesystemIsADirectoryError,
    SandboxFilesystemNotADirectoryError,
    SandboxFilesystemNotFoundError,
    SandboxFilesystemPathAlreadyExistsError,
    SandboxFilesystemPermissionError,
)

# errno: (Modal 1.5's class, Modal 1.6's class); an errno not listed is OSError, SandboxFilesystemError.
_ERRORS = {
    errno.ENOENT: (FileNotFoundError, SandboxFilesystemNotFoundError),
    errno.EPERM: (PermissionError, SandboxFilesystemPermissionError),
    errno.EACCES: (PermissionError, SandboxFilesystemPermissionError),
    errno.EROFS: (OSError, SandboxFilesystemPermissionError),
    errno.EEXIST: (FileExistsError, SandboxFilesystemPathAlreadyExistsError),
    errno.ENOTDIR: (NotADirectoryError, SandboxFilesystemNotADirectoryError),
    errno.EISDIR: (IsADirectoryError, SandboxFilesystemIsADirectoryError),
    errno.ENOTEMPTY: (OSError, SandboxFilesystemDirectoryNotEmptyError),
    errno.EFBIG: (OSError, SandboxFilesystemFileTooLargeError),
    errno.EIO: (IOError, SandboxFilesystemError),
    errno.ENXIO: (IOError, SandboxFilesystemError),
    errno.ENOMEM: (MemoryError, SandboxFilesystemError),
}
_DEFAULT = (OSError, SandboxFilesystemError)


def os_error(err: int, path: str) -> Exception:
    """Modal 1.5's exception for `err` on the sandbox path `path`."""
    return _ERRORS.get(err, _DEFAULT)[0](err, os.strerror(err), path)


def filesystem_error(exc: Exception, path: Optional[str] = None) -> Exception:
    """Modal 1.6's exception for a file request's error: the sandbox has finished
    (ConflictError), or an OSError from init (its message names the path) or from
    reading or writing the sandbox file `path`."""
    if isinstance(exc, ConflictError):
        return NotFoundError("The Sandbox is unavailable. This Sandbox may have already shut down.")
    assert isinstance(exc, OSError)
    message = str(exc) if path is None else f"{path}: {os.strerror(exc.errno)}"
    return _ERRORS.get(exc.errno, _DEFAULT)[1](message)

