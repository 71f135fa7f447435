"""Volumes (volumes/ in the state directory): one directory per volume.

    volumes/<name>/                   a named volume; volumes/ephemeral-<id>/ one of Volume.ephemeral()
        meta.json                     {"volume_id", "name", "created_at"} (name null for an ephemeral one)
        data/                         what sandboxes mount and write (sandbox root's, for a root caller)
    volumes/.<name>.<pid>.<hex>.tmp   a volume being made: published whole by one rename
    volumes/.<name>.<pid>.<hex>.deleted
                                      a volume being deleted: renamed out of sight first, then removed

A crash leaves only the dot-named directories (leftovers(), which garbage.py sweeps). Creates,
renames and the name checks hold names.locked(). What is inside data/ is sandbox-written:
the host walks it only through pysandbox/_beneath.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import Iterator, List, Optional

from .. import settings
from .._validate import is_object_name, object_name
from ..exception import AlreadyExistsError, NotFoundError
from . import files, names

_CREATING, _DELETING = ".tmp", ".deleted"  # suffixes of a volume directory on its way in or out


def volumes_dir() -> Path:
    return settings.state_dir() / "volumes"


def check_name(name: str) -> str:
    """`name`, if it can name a volume (it is also the directory's name); InvalidError otherwise."""
    return object_name(name, "Volume", id_prefix="vo-")


def path(name: str) -> Path:
    """The directory of the volume named `name` (checked), whether or not it exists."""
    return volumes_dir() / check_name(name)


def create(name: str) -> bool:
    """Make the volume named `name`; False if it exists already."""
    directory = path(name)
    files.ensure_dir(volumes_dir())
    with names.locked():
        if directory.exists():
            return False
        _make(directory, name)
    return True


@contextlib.contextmanager
def ephemeral() -> Iterator[dict]:
    """An anonymous volume, removed when the block exits; yields its metadata."""
    files.ensure_dir(volumes_dir())
    directory = volumes_dir() / f"ephemeral-{files.new_id('')}"
    meta = _make(directory, None)
    try:
        yield meta
    finally:
        files.remove_tree(directory)


def _make(directory: Path, name: Optional[str]) -> dict:
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


def delete(name: str) -> bool:
    """Remove the volume named `name`; False if there is none."""
    directory = path(name)
    if not directory.exists():
        return False
    trash = directory.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}{_DELETING}")
    os.rename(directory, trash)  # gone at once for everyone, then removed
    files.remove_tree(trash)
    return True


def rename(old_name: str, new_name: str) -> None:
    old, new = path(old_name), path(new_name)
    with names.locked():
        if not old.exists():
            raise NotFoundError(f"Volume {old_name!r} not found")
        if new.exists():
            raise AlreadyExistsError(f"Volume {new_name!r} already exists")
        files.write_json_atomic(old / "meta.json", {**read_meta(old), "name": new_name})
        os.rename(old, new)


def volume_names() -> List[str]:
    """The named volumes, sorted."""
    directory = volumes_dir()
    return sorted(p.name for p in directory.iterdir() if is_object_name(p.name)) if directory.is_dir() else []


def find_by_id(volume_id: str) -> Optional[Path]:
    """The directory of the volume (named or ephemeral) whose id is `volume_id`, if any."""
    directory = volumes_dir()
    for candidate in (directory.iterdir() if directory.is_dir() else ()):
        try:
            if read_meta(candidate).get("volume_id") == volume_id:
                return candidate
        except (FileNotFoundError, NotADirectoryError):
            continue
    return None


def read_meta(directory: Path) -> dict:
    return files.read_json(directory / "meta.json", "volume")


def leftovers() -> List[Path]:
    """Directories of volume creates and deletes that did not finish (a crash, a full disk)."""
    directory = volumes_dir()
    found = os.listdir(directory) if directory.is_dir() else []
    return [directory / n for n in found if n.startswith(".") and n.endswith((_CREATING, _DELETING))]
