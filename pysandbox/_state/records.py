"""Sandbox records and their exit status: the sandbox directory from its making to its exit record.

record.json is the sandbox's spec, owner process and metadata; `exit` is what its supervisor wrote
when it ended. The layout of the directory is in paths.py. Writes go through files.py (atomic),
and every record is validated when read: one that cannot be parsed raises an error naming its file
and never affects other sandboxes. Reading (finished, read_exit, iter_records, running_records)
never kills a process or writes: a sandbox whose supervisor died without an exit record reads as
lost, and the runtime (runtime/reconcile.py) does its teardown.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import attrs

from .. import _aio, ptypool
from ..exception import ConflictError, Error, ExecutionError, NotFoundError
from ..probe import Probe
from .files import (
    ensure_dir,
    is_int,
    is_number,
    is_well_formed_id,
    private_state_dir,
    read_json,
    remove_tree,
    write_all,
    write_error,
    write_json_atomic,
)
from .paths import EXIT_NAME, RECORD_NAME, TERMINATING_NAME, SandboxDir, collected_exit_path, sandbox_dir, sandboxes_dir
from .proc import ProcessRef

EXIT_RESERVED_BYTES = 512  # the creator file's size: more than the supervisor's whole exit record (320 bytes)
EXIT_PATIENCE_S = 2  # how long finished_error() waits for a vanished sandbox's exit record
LOG_READ_MAX = 16 << 10  # of a supervisor log, read for the cause of a failed start: it comes first
LOG_LINES_MAX = 50
LOG_LINE_MAX = 500
SUPERVISOR_PROGRAM = b"sandbox-supervisor"  # what a record's supervisor process must be running
_STATUSES = ("exited", "timeout", "terminated", "idle_timeout", "failed")
# init's line when it found no terminal for a create(pty=True) entrypoint (native/init/init_entry.c, exit 1): the
# host's pool or the sandbox's devpts bound used up after create's own check. Only init writes the log's first
# lines (pid 1 is not dumpable: no sandbox process reaches its stderr, tests/security/test_56); were it forged,
# all that would change is the class of the error for that sandbox's own end, worded from host state alone.
ENTRY_TERMINAL_ENOSPC = "sandbox-init: allocating a terminal: No space left on device"


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_tags(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _is_tunnels(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, list) and len(t) == 3 and is_int(t[0], 1) and is_int(t[1], 1) and isinstance(t[2], bool)
        for t in value)


def _is_probe(value: Any) -> bool:
    """Probe.to_json() of a valid Probe (port range, one of port or command, no NUL bytes), so a
    corrupt record is refused here, naming its file, rather than when the probe runs."""
    if value is None:
        return True
    if not isinstance(value, dict) or set(value) != {"tcp_port", "exec_argv", "interval_ms"}:
        return False
    try:
        Probe.from_json(value)
    except (Error, TypeError, ValueError):
        return False
    return True


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
    "runner": ("a runner's name", lambda v: isinstance(v, str), False),
    "ptys_max": ("a number or null", lambda v: v is None or is_int(v, 1), False),
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
    runner: str = "bwrap"  # what runs it (settings.RUNNERS); a record older than the field ran under bwrap
    ptys_max: Optional[int] = None  # its devpts's bound (runtime/ptys.py); None under gVisor, or in an older record

    def to_json(self) -> dict:
        # Not recursing: only the supervisor is an attrs class (the rest is JSON already, and only dumped).
        data = attrs.asdict(self, recurse=False)
        data.update(supervisor=self.supervisor.to_json(), entrypoint=list(self.entrypoint))
        return data

    @classmethod
    def from_json(cls, data: Any, path: Union[str, Path]) -> "SandboxRecord":
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
        if values["sandbox_id"] != os.path.basename(os.path.dirname(path)):
            raise corrupt(f"sandbox_id is {values['sandbox_id']}, not the id of its directory")
        values.update(supervisor=ProcessRef.from_json(values["supervisor"]), entrypoint=tuple(values["entrypoint"]),
                      created_at=float(values["created_at"]), timeout=float(values["timeout"]))
        return cls(**values)


def write_record(record: SandboxRecord) -> None:
    write_json_atomic(SandboxDir.of(record.sandbox_id).record, record.to_json(), durable=False)


def read_record(sandbox_id: str) -> SandboxRecord:
    path = SandboxDir.of(sandbox_id).record
    try:
        return SandboxRecord.from_json(read_json(path, "sandbox"), path)
    except FileNotFoundError:
        raise NotFoundError(f"Sandbox with id {sandbox_id} not found") from None


def make_sandbox_dir(sandbox_id: str) -> Path:
    """The new sandbox's directory, which appears under its id whole, already holding its
    creator (so gc never takes a create in progress for an abandoned one). The creator file is
    padded with spaces (valid JSON still) to the size of an exit record: on a full disk the
    supervisor writes its exit record over those bytes, so teardown still records the end."""
    private_state_dir()  # (once per process)
    directory = sandbox_dir(sandbox_id)
    creator = ProcessRef.current()
    staging = directory.with_name(staging_name(sandbox_id, creator))
    try:
        try:
            os.mkdir(staging, 0o700)
        except FileNotFoundError:  # the first sandbox here: only then the mkdir and stat of ensure_dir
            ensure_dir(sandboxes_dir(), 0o711)
            os.mkdir(staging, 0o700)
        # Written in place: nobody sees the staging directory before it is complete.
        fd = os.open(SandboxDir(staging).creator, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            write_all(fd, _creator_file(creator))
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


@functools.lru_cache(maxsize=4)
def _creator_file(creator: ProcessRef) -> bytes:
    """The creator file's bytes: the same for every create of one process (a forked child is another
    ProcessRef), so made once."""
    return json.dumps(creator.to_json()).encode().ljust(EXIT_RESERVED_BYTES)


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


def read_exit(sandbox_id: str, path: Optional[Path] = None) -> Optional[ExitStatus]:
    """The exit record in the sandbox's directory (or at `path`), or None if there is none yet."""
    path = SandboxDir.of(sandbox_id).exit if path is None else path
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


async def finished_error(sandbox_id: str) -> Error:
    """The error for using a sandbox that has ended, a ConflictError; for one that never started (its
    workdir unusable, its runner not executable, its network not set up), with why, from its log; a
    ResourceExhaustedError (ptypool.exhausted) for one whose entrypoint init found no terminal for."""
    message = f"Sandbox {sandbox_id} already finished"
    try:
        status = await _exit_soon(sandbox_id)
        lines = log_lines(sandbox_id)  # complete once the record is there: the supervisor drains it first
        no_terminal = _no_entry_terminal(lines, status)
        bound = read_record(sandbox_id).ptys_max if no_terminal else None
    except (OSError, ExecutionError, NotFoundError):
        return ConflictError(message)
    cause = failure_cause(lines)
    cause = f" ({cause})" if cause else ""
    if no_terminal:
        return ptypool.exhausted(f"{message}: it could not give its entrypoint a terminal{cause}", bound)
    if status is not None and status.status == "failed":
        return ConflictError(f"{message}: it failed to start{cause}")
    return ConflictError(message + cause)


async def _exit_soon(sandbox_id: str) -> Optional[ExitStatus]:
    """The exit record of a sandbox whose init went away, which its supervisor writes within milliseconds
    (after the log: a runner's last words may reach a client's hang-up first); None if its supervisor died."""
    status = read_exit(sandbox_id)
    if status is not None:
        return status
    supervisor = read_record(sandbox_id).supervisor
    deadline = time.monotonic() + EXIT_PATIENCE_S
    while status is None and time.monotonic() < deadline and supervisor.alive(SUPERVISOR_PROGRAM):
        await _aio.sleep(0.005)
        status = read_exit(sandbox_id)
    return read_exit(sandbox_id) if status is None else status


def _no_entry_terminal(lines: List[str], status: Optional[ExitStatus]) -> bool:
    return (status is not None and status.status == "exited" and status.code == 1 and bool(lines)
            and failure_cause(lines) == ENTRY_TERMINAL_ENOSPC)


def log_lines(sandbox_id: str) -> List[str]:
    """The first lines of the sandbox's supervisor log, printable. Bounded: init runs inside the
    sandbox and writes there too, so what it holds is the sandbox's to choose."""
    with open(SandboxDir.of(sandbox_id).log, "rb") as log:
        data = log.read(LOG_READ_MAX)
    text = data.decode(errors="replace")
    return [printable(line.strip()) for line in text.splitlines() if line.strip()][:LOG_LINES_MAX]


# slirp4netns's progress on stderr: it starts while the runner sets the sandbox up, so these
# may come before what the runner or init says on a failed start; with ports, its API socket's
# requests; run with --enable-seccomp, its warning that the filter is experimental. None is a cause.
_HELPER_PROGRESS = ("sent tapfd=", "received tapfd=", "apifd event", "api_handler: ",
                    "WARNING: Support for seccomp is experimental")


# init's words when the supervisor gave up on the network first (native/init/netsync.c): the
# supervisor's own line says why (e.g. "raise PYSANDBOX_HOST_ADDRESSES_MAX"), whichever came first.
_INIT_AFTER_SUPERVISOR = ("sandbox-init: network handshake:", "sandbox-init: the supervisor did not connect")


def failure_cause(lines: List[str]) -> str:
    """The line that says why: the runner's or init's own message, before the supervisor's
    summary of its consequence (e.g. init's "--dir /etc/passwd: Not a directory", not
    "the sandbox's network could not be set up") and the network helper's progress; the
    supervisor's first line when init's says only that the supervisor gave up; "" when the log holds
    nothing but the helper's progress (a sandbox that ended normally: there is no cause to give)."""
    said = [line for line in lines if not line.startswith(_HELPER_PROGRESS)]
    own = [line for line in said if not line.startswith(("sandbox-supervisor:", *_INIT_AFTER_SUPERVISOR))]
    supervisor = [line for line in said if line.startswith("sandbox-supervisor:")]
    return next(iter(own or supervisor or said), "")


def printable(text: str) -> str:
    """`text` with control characters (a terminal's escapes among them) shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:LOG_LINE_MAX]


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
    sandbox = SandboxDir.of(sandbox_id)
    try:
        # A second name of the record, not a file of its own: only its existence counts, and on ext4 a
        # new inode costs ~0.3 ms of system time (docs/ARCHITECTURE.md, issue 19).
        os.link(sandbox.record, sandbox.terminating, follow_symlinks=False)
    except OSError:
        pass  # marked already, removed by gc, or a read-only disk: the sandbox ends all the same


def terminating(sandbox_id: str) -> bool:
    return os.path.exists(SandboxDir.of(sandbox_id).terminating)


def returncode(status: ExitStatus) -> int:
    """What Modal reports: 124 after the timeout, 137 once terminated, else the exit code."""
    return {"timeout": 124, "terminated": 137}.get(status.status, status.code)


def sandbox_state(record: SandboxRecord) -> Tuple[str, Optional[int]]:
    """("running", None), or the final status and the return code Modal would report."""
    status = finished(record)
    return ("running", None) if status is None else (status.status, returncode(status))


# Listing ----------------------------------------------------------------------


def iter_records() -> Iterator[Tuple[str, Union[SandboxRecord, Exception]]]:
    """(sandbox id, its record or the error reading it) for every sandbox directory."""
    for sandbox_id, directory in _sandbox_dirs():
        yield sandbox_id, _read_record_at(sandbox_id, directory)


def _sandbox_dirs() -> List[Tuple[str, str]]:
    """(id, directory) of every sandbox directory. Plain strings: Sandbox.list() walks them
    all, and a Path per directory would cost more than the reads it leads to."""
    try:
        with os.scandir(sandboxes_dir()) as entries:
            return [(entry.name, entry.path) for entry in entries if entry.name.startswith("sb-")]
    except FileNotFoundError:
        return []


class _Seen:
    """What listings learned of one sandbox directory, so that a later one reads only what changed.

    markers: whether it held an exit record and a terminating marker, by the directory's identity
    (inode, mtime, ctime): both only ever appear by a create, a link or a rename in it, which change its
    mtime, so a later listing that finds the directory unchanged stats neither again. Kept only for
    a directory unchanged for _SETTLED_NS before the listing: timestamps are coarse (a clock tick, a
    second on some filesystems), and a change within the tick of the stat would keep the identity.

    record: the record parsed, with the identity of the file it came from. A record is only ever
    replaced whole (a rename: a new inode), so a later listing that finds the same file stats it
    rather than reading and validating it again."""

    __slots__ = ("markers", "record")

    def __init__(self) -> None:
        self.markers: Optional[Tuple[Tuple[int, int, int], bool, bool]] = None
        self.record: Optional[Tuple[Tuple[int, int, int, int], SandboxRecord]] = None


# By sandbox directory; running_records drops the entries of directories that are gone.
_seen: Dict[str, _Seen] = {}
_SETTLED_NS = 2_000_000_000


def _read_record_at(sandbox_id: str, directory: str, seen: Optional[_Seen] = None) -> Union[SandboxRecord, Exception]:
    path = f"{directory}/{RECORD_NAME}"
    try:
        if seen is None:
            return SandboxRecord.from_json(read_json(path, "sandbox"), path)
        info = os.stat(path)
        identity = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
        if seen.record is not None and seen.record[0] == identity:
            return seen.record[1]
        # Replaced between the stat and the read: the next listing sees another identity, and reads again.
        record = SandboxRecord.from_json(read_json(path, "sandbox"), path)
        seen.record = (identity, record)
        return record
    except FileNotFoundError:
        return NotFoundError(f"Sandbox with id {sandbox_id} not found")
    except ExecutionError as exc:
        return exc


def _markers_of(directory: str, seen: _Seen, settled_before: int) -> Tuple[bool, bool]:
    """(whether `directory` holds an exit record, whether a terminating marker), from what an
    earlier listing found if the directory has not changed since; (True, False) once it is gone."""
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        return True, False  # collected by gc meanwhile
    identity = (info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
    if seen.markers is not None and seen.markers[0] == identity:
        return seen.markers[1], seen.markers[2]
    # Looked at after the directory's stat: a change from here on gives it another identity.
    has_exit = os.path.exists(f"{directory}/{EXIT_NAME}")
    marked = not has_exit and os.path.exists(f"{directory}/{TERMINATING_NAME}")
    settled = max(info.st_mtime_ns, info.st_ctime_ns) < settled_before
    seen.markers = (identity, has_exit, marked) if settled else None
    return has_exit, marked


def running_records(app_id: Optional[str] = None, include_terminating: bool = False) -> List[SandboxRecord]:
    """Records of running sandboxes (optionally of one app), newest first; those being
    terminated count only with include_terminating (they still use their image). A record
    that cannot be read is skipped with a warning (`pysandbox gc` reports and removes it)."""
    records = []
    directories = _sandbox_dirs()
    present = {directory for _, directory in directories}
    for directory in [directory for directory in _seen if directory not in present]:
        del _seen[directory]
    settled_before = time.time_ns() - _SETTLED_NS
    for sandbox_id, directory in directories:
        seen = _seen.get(directory) or _seen.setdefault(directory, _Seen())
        has_exit, marked = _markers_of(directory, seen, settled_before)
        if has_exit:
            seen.record = None  # finished: never listed again
            continue
        record = _read_record_at(sandbox_id, directory, seen)
        if isinstance(record, NotFoundError):
            continue  # no record yet: a create in progress (or a directory gc is removing)
        if isinstance(record, Exception):
            warnings.warn(f"Skipped sandbox {sandbox_id}: {record}", RuntimeWarning, stacklevel=2)
            continue
        # No exit record a moment ago and its supervisor alive: running. That is finished()
        # is None with the exit record read once, not twice (the supervisor writes it before
        # it exits, so a live supervisor seen after no exit record is a running sandbox).
        if (app_id is None or record.app_id == app_id) and (include_terminating or not marked) \
                and record.supervisor.alive(SUPERVISOR_PROGRAM):
            records.append(record)
    return sorted(records, key=lambda r: r.created_at, reverse=True)


# The directory without its record -------------------------------------------


def abandoned(directory: Path) -> bool:
    """A directory without a record whose creator died before registering it,
    once its supervisor (if it got that far) has torn the sandbox down."""
    if held(directory):
        return False  # its supervisor is still tearing the unconfirmed sandbox down
    try:
        return not ProcessRef.from_json(read_json(SandboxDir(directory).creator, "creator")).alive()
    except (FileNotFoundError, ExecutionError, ValueError):
        return True


def held(directory: Path) -> bool:
    """Whether a supervisor, runner or sandbox-init of the sandbox is still alive: the creator
    locks the log (shared) before handing it to them as their stdout and stderr, and the lock
    lasts until the last of them has exited."""
    try:
        fd = os.open(SandboxDir(directory).log, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


