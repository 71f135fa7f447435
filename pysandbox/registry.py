"""The state directory: one atomic record per sandbox, its exit status, and apps.

Layout under config.state_dir():

    apps/<app-name>.json            {"app_id", "name", "created_at"}
    sandboxes/<sb-id>/record.json   the sandbox's spec, owner process and metadata
    sandboxes/<sb-id>/exit          written once by the supervisor, after teardown
    sandboxes/<sb-id>/agent.sock    init's listener (host side only)
    sandboxes/<sb-id>/stdout|stderr the entrypoint's output
    sandboxes/<sb-id>/upper/        the sandbox's writable layer

Every write is atomic (temp file, fsync, rename), so a reader sees the old or
the new record, never a torn one. A record that cannot be parsed raises an
error naming its file and never affects other sandboxes.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import time
from pathlib import Path
from typing import Any, Optional

import attrs

from . import config
from .exception import ExecutionError, InvalidError, NotFoundError

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 22


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def is_well_formed_id(object_id: str, prefix: str) -> bool:
    body = object_id[len(prefix):]
    return object_id.startswith(prefix) and len(body) == _ID_LENGTH and all(c in _ID_ALPHABET for c in body)


def write_json_atomic(path: Path, data: Any, mode: int = 0o644, durable: bool = True) -> None:
    """Readers see the old or the new content, never a mix. `durable=False` skips
    the fsync for state that cannot outlive a host crash anyway (a running
    sandbox's record), which would otherwise cost a millisecond per create."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, json.dumps(data, sort_keys=True).encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_json(path: Path, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ExecutionError(f"{what} record {path} is unreadable or corrupt ({exc}); remove it or run `pysandbox gc`.") from None
    if not isinstance(data, dict):
        raise ExecutionError(f"{what} record {path} is corrupt (not a JSON object); remove it or run `pysandbox gc`.")
    return data


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    return path


def sandboxes_dir() -> Path:
    return config.state_dir() / "sandboxes"


def sandbox_dir(sandbox_id: str) -> Path:
    return sandboxes_dir() / sandbox_id


def _stat_fields(pid: int) -> Optional[list]:
    """Fields 3.. of /proc/<pid>/stat (after the command name), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2:].split()


@attrs.frozen
class ProcessRef:
    """A process named by pid *and* start time (clock ticks after boot, as the
    kernel reports it), so a reused pid is never mistaken for the process."""

    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> "ProcessRef":
        fields = _stat_fields(pid)
        if fields is None:
            raise ProcessLookupError(pid)
        return cls(pid, int(fields[19]))

    def alive(self) -> bool:
        fields = _stat_fields(self.pid)
        return fields is not None and int(fields[19]) == self.start_time and fields[0] not in (b"Z", b"X")


@attrs.frozen
class SandboxRecord:
    sandbox_id: str
    app_id: str
    app_name: Optional[str]
    name: Optional[str]
    tags: dict
    created_at: float
    timeout: int
    supervisor: ProcessRef
    entrypoint: tuple
    workdir: str
    image_id: str
    verbose: bool = False

    def to_json(self) -> dict:
        data = attrs.asdict(self)
        data["entrypoint"] = list(self.entrypoint)
        return data

    @classmethod
    def from_json(cls, data: dict, path: Path) -> "SandboxRecord":
        try:
            data = dict(data)
            data["supervisor"] = ProcessRef(**data["supervisor"])
            data["entrypoint"] = tuple(data["entrypoint"])
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ExecutionError(f"sandbox record {path} is corrupt ({exc}); remove it or run `pysandbox gc`.") from None


def write_record(record: SandboxRecord) -> None:
    write_json_atomic(sandbox_dir(record.sandbox_id) / "record.json", record.to_json(), durable=False)


def read_record(sandbox_id: str) -> SandboxRecord:
    path = sandbox_dir(sandbox_id) / "record.json"
    try:
        return SandboxRecord.from_json(read_json(path, "sandbox"), path)
    except FileNotFoundError:
        raise NotFoundError(f"Sandbox with id {sandbox_id} not found") from None


@attrs.frozen
class ExitStatus:
    """What the supervisor wrote when the sandbox ended."""

    status: str  # exited | timeout | terminated | idle_timeout | failed
    code: int
    finished_at: float


def read_exit(sandbox_id: str) -> Optional[ExitStatus]:
    path = sandbox_dir(sandbox_id) / "exit"
    try:
        data = read_json(path, "sandbox exit")
    except FileNotFoundError:
        return None
    try:
        return ExitStatus(str(data["status"]), int(data["code"]), float(data["finished_at"]))
    except (KeyError, TypeError, ValueError):
        raise ExecutionError(f"sandbox exit record {path} is corrupt; remove it or run `pysandbox gc`.") from None


def write_exit(sandbox_id: str, status: ExitStatus) -> None:
    """Used when the supervisor itself is gone (killed) and a reader notices."""
    write_json_atomic(sandbox_dir(sandbox_id) / "exit", attrs.asdict(status))


# Apps ------------------------------------------------------------------------


def apps_dir() -> Path:
    return config.state_dir() / "apps"


def app_path(name: str) -> Path:
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise InvalidError(f"Invalid App name {name!r}: use letters, digits, '-', '_' and '.'.")
    return apps_dir() / f"{name}.json"


def read_app(name: str) -> Optional[dict]:
    try:
        return read_json(app_path(name), "app")
    except FileNotFoundError:
        return None


def create_app(name: str) -> dict:
    """Create the app record unless one exists; of racing creators, one id wins."""
    ensure_dir(apps_dir())
    path = app_path(name)
    record = {"app_id": new_id("ap-"), "name": name, "created_at": time.time()}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    write_json_atomic(tmp, record)
    try:
        os.link(tmp, path)  # link() fails if it exists: first writer wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return read_json(path, "app")


def find_app_by_id(app_id: str) -> Optional[dict]:
    directory = apps_dir()
    if not directory.is_dir():
        return None
    for entry in directory.glob("*.json"):
        try:
            data = read_json(entry, "app")
        except (FileNotFoundError, ExecutionError):
            continue
        if data.get("app_id") == app_id:
            return data
    return None
