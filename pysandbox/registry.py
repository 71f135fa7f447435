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

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import string
import sys
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple, Union

import attrs

from . import _aio, config, identity
from .exception import AlreadyExistsError, ConflictError, ExecutionError, InvalidError, NotFoundError
from .runtime import cgroups

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 22
RECORD_NAME = "record.json"  # a sandbox directory's record; its existence also confirms the sandbox
TERMINATING = "terminating"  # present once terminate() was called
EXIT_PATIENCE_S = 2  # how long finished_error() waits for a vanished sandbox's exit record
LOG_NAME = "supervisor.log"  # the supervisor's, its runner's and sandbox-init's stdout and stderr


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


_private_roots: set = set()  # state directories this process has made private


def ensure_dir(path: Path, mode: int = 0o700) -> Path:
    """`path` (in the state directory) and its parents."""
    private_state_dir()
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    return path


def private_state_dir() -> Path:
    """The state directory, private to its owner (0700): nothing in it is any other local user's
    business (volumes, layers, records, names, sockets). A sandbox's identity reaches what it
    needs through the supervisor's staged binds (runtime/launch.Stager), never through it."""
    root = config.state_dir()
    if str(root) not in _private_roots:
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            root.mkdir(mode=0o700)
        except FileExistsError:
            info = os.stat(root)
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(root, 0o700)  # made public by an earlier version
        identity.adopt_state(str(root))
        _private_roots.add(str(root))
    return root


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
    tunnels: list = attrs.field(factory=list)  # [sandbox port, host port, encrypted], see runtime/netplan.py
    readiness_probe: Optional[dict] = None  # Probe.to_json()

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
    write_json_atomic(sandbox_dir(record.sandbox_id) / RECORD_NAME, record.to_json(), durable=False)


def read_record(sandbox_id: str) -> SandboxRecord:
    path = sandbox_dir(sandbox_id) / RECORD_NAME
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
    # From the sandbox's cgroup, read by the supervisor just before removing it (None: no cgroup).
    oom_kills: Optional[int] = None
    cpu_seconds: Optional[float] = None
    memory_peak: Optional[int] = None


def read_exit(sandbox_id: str) -> Optional[ExitStatus]:
    path = sandbox_dir(sandbox_id) / "exit"
    try:
        data = read_json(path, "sandbox exit")
    except FileNotFoundError:
        return None
    try:
        usage = {key: kind(data[key]) for key, kind in (("oom_kills", int), ("cpu_seconds", float),
                                                          ("memory_peak", int)) if data.get(key) is not None}
        return ExitStatus(str(data["status"]), int(data["code"]), float(data["finished_at"]), **usage)
    except (KeyError, TypeError, ValueError):
        raise ExecutionError(f"sandbox exit record {path} is corrupt; remove it or run `pysandbox gc`.") from None


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
    """The sandbox's exit status, or None while it runs.

    A supervisor killed with SIGKILL writes nothing; the sandbox died with it
    (bwrap runs with --die-with-parent). The first reader to notice does the
    teardown it could not do and records the sandbox as terminated."""
    status = read_exit(record.sandbox_id)
    if status is not None or record.supervisor.alive():
        return status
    status = read_exit(record.sandbox_id)  # it may have exited cleanly just now
    if status is not None:
        return status
    directory = sandbox_dir(record.sandbox_id)
    _kill_strays(directory)
    try:
        cgroups.remove_listed(directory)
    except OSError:
        pass  # still busy: `gc` removes it later, and keeps the directory until it can
    remove_tree(directory / "upper")
    try:
        os.unlink(directory / "agent.sock")
    except FileNotFoundError:
        pass
    status = ExitStatus("terminated", 137, time.time())
    write_json_atomic(directory / "exit", attrs.asdict(status), durable=False)
    return status


def _kill_strays(directory: Path) -> None:
    """A supervisor killed while bwrap (or nsjail) was still setting the sandbox up can
    strand the runner's child, not yet under --die-with-parent, blocked on a runner that
    is gone. It still carries the runner's command line, which names the sandbox
    (sandbox-init's `--sandbox ID`)."""
    name = os.fsencode(directory.name)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if os.path.basename(argv[0]) in (b"bwrap", b"nsjail") and any(
                    a == b"--sandbox" and b == name for a, b in zip(argv, argv[1:])):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass  # gone meanwhile, or not ours to read


def mark_terminating(sandbox_id: str) -> None:
    """Record that terminate() was asked for, so the sandbox leaves list() and frees its name
    at once rather than when its supervisor has finished tearing it down."""
    try:
        os.close(os.open(sandbox_dir(sandbox_id) / TERMINATING, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    except FileNotFoundError:
        pass  # already removed by gc: nothing left to list


def terminating(sandbox_id: str) -> bool:
    return os.path.exists(sandbox_dir(sandbox_id) / TERMINATING)


def returncode(status: ExitStatus) -> int:
    """What Modal reports: 124 after the timeout, 137 once terminated, else the exit code."""
    return {"timeout": 124, "terminated": 137}.get(status.status, status.code)


def sandbox_state(record: SandboxRecord) -> Tuple[str, Optional[int]]:
    """("running", None), or the final status and the return code Modal would report."""
    status = finished(record)
    return ("running", None) if status is None else (status.status, returncode(status))


def remove_tree(path: Path) -> None:
    """rmtree that also gets through directories sandbox code made unreadable (chmod 000)."""

    def make_accessible(_func, failed_path, exc):
        if isinstance(exc[1] if isinstance(exc, tuple) else exc, FileNotFoundError):
            return  # removed meanwhile (a supervisor finishing its own teardown)
        os.chmod(os.path.dirname(failed_path), 0o700)
        if os.path.isdir(failed_path) and not os.path.islink(failed_path):
            os.chmod(failed_path, 0o700)
            remove_tree(Path(failed_path))
        else:
            os.unlink(failed_path)

    handler = {"onexc": make_accessible} if sys.version_info >= (3, 12) else {"onerror": make_accessible}
    if os.path.lexists(path):
        shutil.rmtree(path, **handler)


# Locking, names, tags, listing ------------------------------------------------


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """The state directory's lock, for read-modify-write of names and tags."""
    ensure_dir(config.state_dir())
    fd = os.open(config.state_dir() / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _name_path(app_id: str, name: str) -> Path:
    return config.state_dir() / "names" / app_id / name


def _claim_holder_running(claim: dict) -> bool:
    try:
        record = read_record(claim["sandbox_id"])
    except NotFoundError:  # being created right now, unless its creator died or gc removed it
        creator = claim.get("creator")
        return bool(creator) and ProcessRef(**creator).alive() and sandbox_dir(claim["sandbox_id"]).exists()
    except ExecutionError:
        return False
    return finished(record) is None and not terminating(record.sandbox_id)


def claim_name(app_id: str, name: str, sandbox_id: str) -> None:
    """Reserve `name` in the app for `sandbox_id`; AlreadyExistsError if a running sandbox has it."""
    path = _name_path(app_id, name)
    with locked():
        try:
            claim = read_json(path, "name claim")
        except (FileNotFoundError, ExecutionError):
            claim = None
        if claim is not None and _claim_holder_running(claim):
            raise AlreadyExistsError(
                f"A sandbox named {name!r} is already running in this app ({claim['sandbox_id']}); "
                "pick another name or terminate it first."
            )
        ensure_dir(path.parent)
        creator = ProcessRef.of(os.getpid())
        write_json_atomic(path, {"sandbox_id": sandbox_id, "creator": attrs.asdict(creator)}, durable=False)


def release_name(app_id: str, name: str, sandbox_id: str) -> None:
    """Drop a claim that still points at `sandbox_id` (its create failed)."""
    path = _name_path(app_id, name)
    with locked():
        try:
            if read_json(path, "name claim").get("sandbox_id") == sandbox_id:
                os.unlink(path)
        except (FileNotFoundError, ExecutionError):
            pass


def claimed_sandbox(app_id: str, name: str) -> Optional[str]:
    try:
        return read_json(_name_path(app_id, name), "name claim").get("sandbox_id")
    except (FileNotFoundError, ExecutionError):
        return None


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
        if skip_finished and os.path.exists(os.path.join(entry.path, "exit")):
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
    terminated count only with include_terminating (they still use their image)."""
    records = []
    for _, record in iter_records(skip_finished=True):
        if isinstance(record, Exception) or (app_id is not None and record.app_id != app_id):
            continue
        if not include_terminating and terminating(record.sandbox_id):
            continue
        if record.supervisor.alive() or finished(record) is None:
            records.append(record)
    return sorted(records, key=lambda r: r.created_at, reverse=True)


def write_creator(directory: Path) -> None:
    """Mark a sandbox directory as being created by this process (see collect_garbage)."""
    write_json_atomic(directory / "creator", attrs.asdict(ProcessRef.of(os.getpid())), durable=False)


def _abandoned(directory: Path) -> bool:
    """A directory without a record whose creator died before registering it,
    once its supervisor (if it got that far) has torn the sandbox down."""
    if held(directory):
        return False  # its supervisor is still tearing the unconfirmed sandbox down
    try:
        return not ProcessRef(**read_json(directory / "creator", "creator")).alive()
    except (FileNotFoundError, ExecutionError, TypeError):
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


def collect_garbage() -> List[str]:
    """Remove the directories of finished and abandoned sandboxes; the ids removed."""
    removed = []
    for sandbox_id, record in iter_records():
        directory = sandbox_dir(sandbox_id)
        if isinstance(record, NotFoundError):
            if not _abandoned(directory):
                continue
        elif isinstance(record, Exception) or finished(record) is None:
            continue  # corrupt records are reported, never silently deleted
        try:
            cgroups.remove_listed(directory)  # a supervisor that died or gave up left it
        except OSError:
            continue  # its processes are still dying: the next gc removes both
        remove_tree(directory)
        removed.append(sandbox_id)
    return removed


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
