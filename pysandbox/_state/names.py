"""Names and tags: the state directory's lock, the name claims of running sandboxes, tag updates.

A name claim (names/<app-id>/<name>) holds the sandbox id and the process creating it; it is
free to take once that sandbox has ended, is being terminated, or its creator died before
recording it. Read-modify-write of claims and tags (and of volumes and secrets) holds locked().
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator, Optional, Tuple

import attrs

from .. import settings
from ..exception import AlreadyExistsError, ConflictError, ExecutionError, NotFoundError
from .files import ensure_dir, is_well_formed_id, read_json, write_json_atomic
from .paths import sandbox_dir
from .proc import ProcessRef
from .records import SandboxRecord, finished, read_record, terminating, write_record


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """The state directory's lock, for read-modify-write of names and tags."""
    ensure_dir(settings.state_dir())
    # Read-only is enough for flock, and opens on a read-only disk too (gc still reports there).
    fd = os.open(settings.state_dir() / "lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _name_path(app_id: str, name: str) -> Path:
    return settings.state_dir() / "names" / app_id / name


def read_claim(path: Path) -> Optional[Tuple[str, Optional[ProcessRef]]]:
    """(sandbox id, creator) of a name claim; None if there is none, or it is corrupt (free to take)."""
    try:
        data = read_json(path, "name claim")
        creator = data.get("creator")
        claim = data["sandbox_id"], None if creator is None else ProcessRef.from_json(creator)
    except (FileNotFoundError, ExecutionError, KeyError, ValueError):
        return None
    return claim if is_well_formed_id(claim[0], "sb-") else None


def claim_holder_running(sandbox_id: str, creator: Optional[ProcessRef]) -> bool:
    try:
        record = read_record(sandbox_id)
    except NotFoundError:  # being created right now, unless its creator died or gc removed it
        return creator is not None and creator.alive() and sandbox_dir(sandbox_id).exists()
    except ExecutionError:
        return False
    try:
        return finished(record) is None and not terminating(sandbox_id)
    except ExecutionError:  # a corrupt exit record: it has ended
        return False


def claim_name(app_id: str, name: str, sandbox_id: str) -> None:
    """Reserve `name` in the app for `sandbox_id`; AlreadyExistsError if a running sandbox has it."""
    with locked():
        _claim(app_id, name, sandbox_id, ProcessRef.current())


def _claim(app_id: str, name: str, sandbox_id: str, creator: Optional[ProcessRef]) -> None:
    """claim_name's work, under locked(); `creator` None: the sandbox is recorded already."""
    path = _name_path(app_id, name)
    claim = read_claim(path)
    if claim is not None and claim_holder_running(*claim):
        raise AlreadyExistsError(
            f"A sandbox named {name!r} is already running in this app ({claim[0]}); "
            "pick another name or terminate it first."
        )
    ensure_dir(path.parent)
    write_json_atomic(path, {"sandbox_id": sandbox_id, "creator": creator and creator.to_json()}, durable=False)


def set_name(sandbox_id: str, name: str) -> SandboxRecord:
    """Name a running sandbox that has none (Modal's _experimental_set_name): its claim and its record.
    Its own name again is no change; ConflictError if it has another or has ended."""
    with locked():
        record = read_record(sandbox_id)
        if record.name == name:
            return record
        if record.name is not None:
            raise ConflictError(f"Sandbox {sandbox_id} is already named {record.name!r}; a name is set only once.")
        if not claim_holder_running(sandbox_id, None):
            raise ConflictError(f"Sandbox {sandbox_id} is no longer running: it cannot be named.")
        _claim(record.app_id, name, sandbox_id, None)
        record = attrs.evolve(record, name=name)
        write_record(record)
    return record


def release_name(app_id: str, name: str, sandbox_id: str) -> None:
    """Drop a claim that still points at `sandbox_id` (its create failed)."""
    path = _name_path(app_id, name)
    with locked():
        claim = read_claim(path)
        if claim is not None and claim[0] == sandbox_id:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def claimed_sandbox(app_id: str, name: str) -> Optional[str]:
    claim = read_claim(_name_path(app_id, name))
    return None if claim is None else claim[0]


def update_tags(sandbox_id: str, tags: dict) -> SandboxRecord:
    with locked():
        record = attrs.evolve(read_record(sandbox_id), tags=dict(tags))
        write_record(record)
    return record


