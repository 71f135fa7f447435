"""Sandbox records, their exit status, name claims, tags and apps, in the state directory.

Layout under config.state_dir():

    apps/<app-name>.json              {"app_id", "name", "created_at"}
    names/<app-id>/<name>             a name claim: {"sandbox_id", "creator"}
    lock                              held for read-modify-write of names and tags (locked())
    sandboxes/.exits/<sb-id>          the exit record of a directory gc removed, kept for the retention
    sandboxes/<sb-id>/creator         the process creating the sandbox (until its record exists),
                                      padded: on a full disk the exit record is written over it
    sandboxes/<sb-id>/record.json     the sandbox's spec, owner process and metadata
    sandboxes/<sb-id>/exit            written once by the supervisor, after teardown (or by
                                      runtime/reconcile.py for a supervisor that died without a word)
    sandboxes/<sb-id>/agent.sock      init's listener (host side only)
    sandboxes/<sb-id>/stdout|stderr   the entrypoint's output, written by the supervisor
    sandboxes/<sb-id>/upper/          the sandbox's writable layer
    sandboxes/<sb-id>/terminating     present once terminate() has signalled the supervisor
    sandboxes/<sb-id>/supervisor.log  the supervisor's, runner's and init's own output; its lock
                                      says whether any of them still runs (held())
    sandboxes/<sb-id>/cgroup.json     the sandbox's cgroup (runtime/cgroups)
    sandboxes/<sb-id>/net/            resolv.conf and the network helper's socket (runtime/netplan.py)

Writes go through _state/files.py (atomic), and every record is validated when read: one
that cannot be parsed raises an error naming its file and never affects other sandboxes.
Reading (finished, read_exit, iter_records, running_records, list, from_id, poll) never
kills a process or writes: a sandbox whose supervisor died without an exit record reads as
lost, and the runtime (runtime/reconcile.py) does its teardown.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import attrs

from . import _aio, config
from ._state.files import (
    ensure_dir,
    is_int,
    is_number,
    is_well_formed_id,
    new_id,
    read_json,
    remove_tree,
    write_all,
    write_error,
    write_json_atomic,
)
from ._state.proc import ProcessRef
from .exception import AlreadyExistsError, ConflictError, ExecutionError, InvalidError, NotFoundError

RECORD_NAME = "record.json"  # a sandbox directory's record; its existence also confirms the sandbox
CREATOR_NAME = "creator"  # the creating process, so gc leaves a create in progress alone
EXIT_RESERVED_BYTES = 512  # the creator file's size: more than the supervisor's whole exit record (320 bytes)
EXIT_NAME = "exit"
COLLECTED_EXITS = ".exits"  # sandboxes/.exits/<id>: exit records of directories gc removed
TERMINATING = "terminating"  # present once terminate() has signalled the supervisor
EXIT_PATIENCE_S = 2  # how long finished_error() waits for a vanished sandbox's exit record
LOG_NAME = "supervisor.log"  # the supervisor's, its runner's and sandbox-init's stdout and stderr
SUPERVISOR_PROGRAM = b"sandbox-supervisor"  # what a record's supervisor process must be running
_STATUSES = ("exited", "timeout", "terminated", "idle_timeout", "failed")


def sandboxes_dir() -> Path:
    return config.state_dir() / "sandboxes"


def sandbox_dir(sandbox_id: str) -> Path:
    return sandboxes_dir() / sandbox_id


# Sandbox records --------------------------------------------------------------


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_tags(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _is_tunnels(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, list) and len(t) == 3 and is_int(t[0], 1) and is_int(t[1], 1) and isinstance(t[2], bool)
        for t in value)


def _is_probe(value: Any) -> bool:
    """The shape of Probe.to_json(); the sandbox builds the Probe (and validates its values) when it runs it."""
    return value is None or (
        isinstance(value, dict) and set(value) == {"tcp_port", "exec_argv", "interval_ms"}
        and (value["tcp_port"] is None or is_int(value["tcp_port"], 1))
        and (value["exec_argv"] is None or _is_str_list(value["exec_argv"]))
        and is_int(value["interval_ms"], 1))


def _is_process(value: Any) -> bool:
    try:
        ProcessRef.from_json(value)
        return True
    except ValueError:
        return False


# Each field of record.json: (what it must be, the check, whether it must be there).
_RECORD_FIELDS: Dict[str, Tuple[str, Callable[[Any], bool], bool]] = {
    "sandbox_id": ("this sandbox's id", lambda v: is_well_formed_id(v, "sb-"), True),
    "app_id": ("an app id", lambda v: isinstance(v, str), True),
    "app_name": ("a string or null", lambda v: v is None or isinstance(v, str), True),
    "name": ("a string or null", lambda v: v is None or isinstance(v, str), True),
    "tags": ("an object of strings", _is_tags, True),
    "created_at": ("a number", is_number, True),
    "timeout": ("a number", is_number, True),
    "supervisor": ("a process", _is_process, True),
    "entrypoint": ("a list of strings", _is_str_list, True),
    "workdir": ("a string", lambda v: isinstance(v, str), True),
    "image_id": ("a string", lambda v: isinstance(v, str), True),
    "verbose": ("true or false", lambda v: isinstance(v, bool), False),
    "tunnels": ("a list of [port, port, encrypted]", _is_tunnels, False),
    "readiness_probe": ("a probe or null", _is_probe, False),
}


@attrs.frozen
class SandboxRecord:
    sandbox_id: str
    app_id: str
    app_name: Optional[str]
    name: Optional[str]
    tags: dict
    created_at: float
    timeout: float
    supervisor: ProcessRef
    entrypoint: tuple
    workdir: str
    image_id: str
    verbose: bool = False
    tunnels: list = attrs.field(factory=list)  # [sandbox port, host port, encrypted], see runtime/netplan.py
    readiness_probe: Optional[dict] = None  # Probe.to_json()

    def to_json(self) -> dict:
        data = attrs.asdict(self)
        data["entrypoint"] = list(self.entrypoint)
        return data

    @classmethod
    def from_json(cls, data: Any, path: Path) -> "SandboxRecord":
        """The record in `data`, read from `path`; ExecutionError naming the file and the field
        if anything is missing or of the wrong type (fields this version does not know are ignored)."""
        def corrupt(why: str) -> ExecutionError:
            return ExecutionError(f"sandbox record {path} is corrupt ({why}); run `pysandbox gc` to remove it.")

        if not isinstance(data, dict):
            raise corrupt("not a JSON object")
        values = {}
        for field, (meaning, check, required) in _RECORD_FIELDS.items():
            if field not in data:
                if required:
                    raise corrupt(f"no {field}")
                continue
            if not check(data[field]):
                raise corrupt(f"{field} is not {meaning}")
            values[field] = data[field]
        if values["sandbox_id"] != path.parent.name:
            raise corrupt(f"sandbox_id is {values['sandbox_id']}, not the id of its directory")
        values.update(supervisor=ProcessRef.from_json(values["supervisor"]), entrypoint=tuple(values["entrypoint"]),
                      created_at=float(values["created_at"]), timeout=float(values["timeout"]))
        return cls(**values)


def write_record(record: SandboxRecord) -> None:
    write_json_atomic(sandbox_dir(record.sandbox_id) / RECORD_NAME, record.to_json(), durable=False)


def read_record(sandbox_id: str) -> SandboxRecord:
    path = sandbox_dir(sandbox_id) / RECORD_NAME
    try:
        return SandboxRecord.from_json(read_json(path, "sandbox"), path)
    except FileNotFoundError:
        raise NotFoundError(f"Sandbox with id {sandbox_id} not found") from None


def make_sandbox_dir(sandbox_id: str) -> Path:
    """The new sandbox's directory, which appears under its id whole, already holding its
    creator (so gc never takes a create in progress for an abandoned one). The creator file is
    padded with spaces (valid JSON still) to the size of an exit record: on a full disk the
    supervisor writes its exit record over those bytes, so teardown still records the end."""
    ensure_dir(sandboxes_dir(), 0o711)
    directory = sandbox_dir(sandbox_id)
    creator = ProcessRef.of(os.getpid())
    staging = directory.with_name(staging_name(sandbox_id, creator))
    try:
        os.mkdir(staging, 0o700)
        # Written in place: nobody sees the staging directory before it is complete.
        fd = os.open(staging / CREATOR_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            write_all(fd, json.dumps(creator.to_json()).encode().ljust(EXIT_RESERVED_BYTES))
        finally:
            os.close(fd)
        os.rename(staging, directory)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            remove_tree(staging)
        if isinstance(exc, OSError):
            raise write_error(staging, exc) from None
        raise
    return directory


def staging_name(sandbox_id: str, creator: ProcessRef) -> str:
    """Where make_sandbox_dir() builds the directory: the name says who builds it, so gc can tell
    a create in progress from a dead one's leftover even before the creator file is written."""
    return f".{sandbox_id}.{creator.pid}.{creator.start_time}.new"


def staging_creator(name: str) -> Optional[ProcessRef]:
    """The creator a staging_name() names (without a boot id: the name does not hold it), or None."""
    parts = name.split(".")
    if len(parts) == 5 and parts[0] == "" and parts[4] == "new" and parts[2].isdigit() and parts[3].isdigit():
        return ProcessRef(int(parts[2]), int(parts[3]))
    return None


@attrs.frozen
class ExitStatus:
    """What the supervisor wrote when the sandbox ended."""

    status: str  # exited | timeout | terminated | idle_timeout | failed
    code: int
    finished_at: float
    # From the sandbox's cgroup, read by the supervisor just before removing it (None: no cgroup).
    oom_kills: Optional[int] = None
    cpu_seconds: Optional[float] = None
    memory_peak: Optional[int] = None
    # True when no supervisor wrote it: it died without a word (SIGKILL, a host crash, a disk it
    # could not write), so the sandbox died with it and reads as terminated (see runtime/reconcile.py).
    lost: bool = attrs.field(default=False, eq=False)


def collected_exit_path(sandbox_id: str) -> Path:
    """Where gc keeps the exit record of a sandbox whose directory it removed (a hard link made
    before the removal), for handles that have not read it yet; kept for the retention time."""
    return sandboxes_dir() / COLLECTED_EXITS / sandbox_id


def read_exit(sandbox_id: str, path: Optional[Path] = None) -> Optional[ExitStatus]:
    """The exit record in the sandbox's directory (or at `path`), or None if there is none yet."""
    path = sandbox_dir(sandbox_id) / EXIT_NAME if path is None else path
    try:
        data = read_json(path, "sandbox exit")
    except FileNotFoundError:
        return None
    usage = {"oom_kills": is_int, "cpu_seconds": is_number, "memory_peak": is_int}
    if not (data.get("status") in _STATUSES and is_int(data.get("code"), -(1 << 31))
            and is_number(data.get("finished_at"))
            and all(data.get(key) is None or check(data[key]) for key, check in usage.items())):
        raise ExecutionError(f"sandbox exit record {path} is corrupt; run `pysandbox gc` to remove it.")
    return ExitStatus(data["status"], data["code"], float(data["finished_at"]),
                      **{key: data.get(key) for key in usage})


async def finished_error(sandbox_id: str) -> ConflictError:
    """The error for using a sandbox that has ended; for one that never started (its
    runner could not be executed, its network not be set up), with what its supervisor logged."""
    message = f"Sandbox {sandbox_id} already finished"
    try:
        with open(sandbox_dir(sandbox_id) / LOG_NAME, errors="replace") as log:
            lines = [line.strip() for line in log if line.strip()]
        status = read_exit(sandbox_id)
        deadline = time.monotonic() + EXIT_PATIENCE_S
        while lines and status is None and time.monotonic() < deadline:  # something went wrong: the
            await _aio.sleep(0.01)  # record saying whether it failed to start follows within milliseconds
            status = read_exit(sandbox_id)
    except (OSError, ExecutionError):
        return ConflictError(message)
    if status is not None and status.status == "failed":
        message += ": it failed to start" + (f" ({lines[-1]})" if lines else "")
    return ConflictError(message)


def finished(record: SandboxRecord) -> Optional[ExitStatus]:
    """The sandbox's exit status, or None while it runs; never writes anything.

    A supervisor that died without writing its record (SIGKILL, a host crash, a full or
    read-only disk) took the sandbox with it (bwrap runs with --die-with-parent): the
    sandbox reads as terminated, with `lost` set, and runtime/reconcile.repair() does the
    teardown it could not.
    A sandbox whose directory gc removed meanwhile reads the exit record gc kept aside."""
    status = read_exit(record.sandbox_id)
    if status is not None or record.supervisor.alive(SUPERVISOR_PROGRAM):
        return status
    status = read_exit(record.sandbox_id)  # it may have exited cleanly just now
    if status is None:
        status = read_exit(record.sandbox_id, collected_exit_path(record.sandbox_id))
    return status if status is not None else ExitStatus("terminated", 137, time.time(), lost=True)


def mark_terminating(sandbox_id: str) -> None:
    """Record that terminate() has signalled the supervisor, so the sandbox leaves list() and
    frees its name at once rather than when its supervisor has finished tearing it down."""
    try:
        os.close(os.open(sandbox_dir(sandbox_id) / TERMINATING, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    except OSError:
        pass  # removed by gc, or a read-only disk: the sandbox ends all the same


def terminating(sandbox_id: str) -> bool:
    return os.path.exists(sandbox_dir(sandbox_id) / TERMINATING)


def returncode(status: ExitStatus) -> int:
    """What Modal reports: 124 after the timeout, 137 once terminated, else the exit code."""
    return {"timeout": 124, "terminated": 137}.get(status.status, status.code)


def sandbox_state(record: SandboxRecord) -> Tuple[str, Optional[int]]:
    """("running", None), or the final status and the return code Modal would report."""
    status = finished(record)
    return ("running", None) if status is None else (status.status, returncode(status))


# Locking, names, tags, listing ------------------------------------------------


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """The state directory's lock, for read-modify-write of names and tags."""
    ensure_dir(config.state_dir())
    # Read-only is enough for flock, and opens on a read-only disk too (gc still reports there).
    fd = os.open(config.state_dir() / "lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _name_path(app_id: str, name: str) -> Path:
    return config.state_dir() / "names" / app_id / name


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
    path = _name_path(app_id, name)
    with locked():
        claim = read_claim(path)
        if claim is not None and claim_holder_running(*claim):
            raise AlreadyExistsError(
                f"A sandbox named {name!r} is already running in this app ({claim[0]}); "
                "pick another name or terminate it first."
            )
        ensure_dir(path.parent)
        creator = ProcessRef.of(os.getpid())
        write_json_atomic(path, {"sandbox_id": sandbox_id, "creator": creator.to_json()}, durable=False)


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


def iter_records(skip_finished: bool = False) -> Iterator[Tuple[str, Union[SandboxRecord, Exception]]]:
    """(sandbox id, its record or the error reading it) for every sandbox directory;
    with skip_finished, those whose exit record exists are passed over unread."""
    try:
        entries = list(os.scandir(sandboxes_dir()))
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.name.startswith("sb-"):
            continue
        if skip_finished and os.path.exists(os.path.join(entry.path, EXIT_NAME)):
            continue
        path = Path(entry.path, RECORD_NAME)
        try:
            yield entry.name, SandboxRecord.from_json(read_json(path, "sandbox"), path)
        except FileNotFoundError:
            yield entry.name, NotFoundError(f"Sandbox with id {entry.name} not found")
        except ExecutionError as exc:
            yield entry.name, exc


def running_records(app_id: Optional[str] = None, include_terminating: bool = False) -> List[SandboxRecord]:
    """Records of running sandboxes (optionally of one app), newest first; those being
    terminated count only with include_terminating (they still use their image). A record
    that cannot be read is skipped with a warning (`pysandbox gc` reports and removes it)."""
    records = []
    for sandbox_id, record in iter_records(skip_finished=True):
        try:
            if isinstance(record, Exception):
                raise record
            if (app_id is None or record.app_id == app_id) and finished(record) is None \
                    and (include_terminating or not terminating(sandbox_id)):
                records.append(record)
        except NotFoundError:
            continue  # no record yet: a create in progress (or a directory gc is removing)
        except ExecutionError as exc:
            warnings.warn(f"Skipped sandbox {sandbox_id}: {exc}", RuntimeWarning, stacklevel=2)
    return sorted(records, key=lambda r: r.created_at, reverse=True)


def abandoned(directory: Path) -> bool:
    """A directory without a record whose creator died before registering it,
    once its supervisor (if it got that far) has torn the sandbox down."""
    if held(directory):
        return False  # its supervisor is still tearing the unconfirmed sandbox down
    try:
        return not ProcessRef.from_json(read_json(directory / CREATOR_NAME, "creator")).alive()
    except (FileNotFoundError, ExecutionError, ValueError):
        return True


def held(directory: Path) -> bool:
    """Whether a supervisor, runner or sandbox-init of the sandbox is still alive: the creator
    locks the log (shared) before handing it to them as their stdout and stderr, and the lock
    lasts until the last of them has exited."""
    try:
        fd = os.open(directory / LOG_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# Apps ------------------------------------------------------------------------


def apps_dir() -> Path:
    return config.state_dir() / "apps"


def app_path(name: str) -> Path:
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise InvalidError(f"Invalid App name {name!r}: use letters, digits, '-', '_' and '.'.")
    return apps_dir() / f"{name}.json"


def read_app(name: str) -> Optional[dict]:
    path = app_path(name)
    try:
        data = read_json(path, "app")
    except FileNotFoundError:
        return None
    if not (is_well_formed_id(data.get("app_id"), "ap-") and data.get("name") == name):
        raise ExecutionError(f"app record {path} is corrupt (no app id, or another app's name); remove it.")
    return data


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
    return read_app(name)


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
