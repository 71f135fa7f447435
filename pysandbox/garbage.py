"""Garbage collection of the state directory: on demand (`pysandbox gc`) and, rate-limited,
in the background of creates.

What is collected: the directories of finished sandboxes, of creates whose creator died
before registering the sandbox, and of sandboxes whose record is corrupt once they have
ended; name claims of sandboxes that no longer run; the temporary files and half-made
directories of interrupted writes (sandboxes, apps, claims, secrets, volumes); image
layers whose build did not finish. A collection continues past every error and reports
it; it never acts on a state file it cannot trust (a corrupt record of a sandbox still
running is kept, a cgroup.json naming a foreign cgroup is refused).

The automatic collection runs in a daemon thread started by a create at most once per
`PYSANDBOX_GC_INTERVAL` seconds per state directory (a stamp file's age says when the last
one ran, a lock keeps two from running at once), so a create never waits for it; it keeps
everything that changed less than `PYSANDBOX_FINISHED_RETENTION` seconds ago, so a finished
sandbox's result and output stay readable through from_id for that long.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional, Union

import attrs

from . import bounds, settings
from ._state import apps, files, names, paths, records, volumes
from ._state.proc import ProcessRef
from .exception import Error, ExecutionError, NotFoundError
from .image import store as image_store
from .runtime import cgroups, reconcile

logger = logging.getLogger("pysandbox.gc")

TEMP_GRACE_S = 60  # a temporary file or directory older than this is litter of an interrupted write
STAMP_NAME = "gc.stamp"  # its mtime: when the last automatic collection started
LOCK_NAME = "gc.lock"


@attrs.define
class Collection:
    """What a collection removed, and what it found wrong (one line each)."""

    sandboxes: List[str] = attrs.Factory(list)  # ids of the sandbox directories removed
    claims: int = 0  # name claims of sandboxes that no longer run
    leftovers: int = 0  # temporary files and half-made directories of interrupted writes
    layers: int = 0  # image layers whose build did not finish
    notes: List[str] = attrs.Factory(list)  # corrupt or untrusted state found, and what was done
    problems: List[str] = attrs.Factory(list)  # what could not be removed, and why


def collect(min_age: float = 0.0) -> Collection:
    """Collect everything listed above; `min_age` keeps what finished or changed less than
    that many seconds ago. Waits for a collection another process is running."""
    retention = bounds.get("finished_retention_s")  # a bad setting: an error before any work
    found = Collection()
    with _lock(wait=True):
        _collect(min_age, retention, found)
    return found


def _collect(min_age: float, retention: float, found: Collection) -> None:
    now = time.time()
    temp_age = max(min_age, TEMP_GRACE_S)
    try:
        entries = list(os.scandir(paths.sandboxes_dir()))
    except FileNotFoundError:
        entries = []
    for entry in entries:  # first: finished sandboxes hold most of the space a full disk needs back
        if entry.name.startswith("sb-") and not _collect_sandbox(entry.name, min_age, now, found):
            _sweep_temp_files(Path(entry.path), temp_age, now, found)  # of records rewritten by writers that died
        elif entry.name.startswith(".") and entry.name.endswith((".new", ".trash")):
            _collect_staging(Path(entry.path), temp_age, now, found)
    _collect_exits(max(min_age, retention), now, found)
    _collect_claims(found)
    state = settings.state_dir()
    for directory in (state, apps.apps_dir(), state / "secrets", state / "python", image_store.root() / "refs"):
        _sweep_temp_files(directory, temp_age, now, found)
    for path in volumes.leftovers():
        if not _changed_within(temp_age, now, path):
            found.leftovers += _remove(path, found)
    try:
        found.layers += image_store.remove_stale_temps()
    except OSError as exc:
        found.problems.append(f"could not remove unfinished image layers: {exc.strerror or exc}")
    except Error as exc:  # a running sandbox's image is damaged: which layers it stands on is unknown
        found.problems.append(f"kept unfinished image layers: {exc}")


def _collect_sandbox(sandbox_id: str, min_age: float, now: float, found: Collection) -> bool:
    """Remove the sandbox's directory if it has ended (or was abandoned); whether it did."""
    directory = paths.sandbox_dir(sandbox_id)
    record: Optional[records.SandboxRecord] = None
    try:
        record = records.read_record(sandbox_id)
        status = records.finished(record)
    except NotFoundError:  # no record: a create in progress, or one whose creator died
        if not records.abandoned(directory) or _changed_within(min_age, now, directory):
            return False
    except ExecutionError as exc:  # a corrupt record or exit record
        if records.held(directory):
            found.notes.append(f"{exc} Its sandbox still runs, so it is kept until it ends.")
            return False
        if _changed_within(min_age, now, directory, paths.SandboxDir(directory).record):
            return False
        found.notes.append(f"{exc} Its sandbox has ended: removed.")
        record = None
    else:
        if status is None or _changed_within(min_age, now, directory, paths.SandboxDir(directory).exit):
            return False
        if status.lost:
            found.notes.extend(reconcile.repair(record))
    try:
        cgroups.remove_listed(directory)  # a supervisor that died or gave up left it
    except ExecutionError as exc:
        found.notes.append(str(exc))  # refused: nothing it names is touched
    except OSError:
        return False  # its processes are still dying: the next collection removes both
    # Its exit record is kept aside first (a link: no space needed) for handles still waiting on
    # it; then the directory is renamed away: a reader sees it whole or not at all, and an
    # interrupted removal leaves only a `.trash` directory for the next collection.
    if record is not None:
        _keep_exit(sandbox_id)
    trash = directory.with_name(f".{sandbox_id}.trash")
    try:
        os.rename(directory, trash)
    except FileNotFoundError:
        return False  # another collection took it
    except OSError as exc:
        found.problems.append(f"could not remove {directory}: {exc.strerror or exc}")
        return False
    if not _remove(trash, found):
        return False
    found.sandboxes.append(sandbox_id)
    return True


def _keep_exit(sandbox_id: str) -> None:
    kept = paths.collected_exit_path(sandbox_id)
    try:
        files.ensure_dir(kept.parent, 0o711)
        os.link(paths.SandboxDir.of(sandbox_id).exit, kept)
    except FileExistsError:
        pass
    except OSError:
        pass  # no exit record (it could not be written) or no room to link it: handles read it as lost


def _collect_exits(min_age: float, now: float, found: Collection) -> None:
    """Exit records kept aside by earlier collections, once older than the retention."""
    directory = paths.sandboxes_dir() / paths.COLLECTED_EXITS
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not _changed_within(min_age, now, entry.path):
            _remove(Path(entry.path), found)


def _collect_staging(path: Path, min_age: float, now: float, found: Collection) -> None:
    """A `.new` directory of a create that died before its sandbox directory appeared
    (records.make_sandbox_dir), or a `.trash` one a collection did not finish removing."""
    if path.name.endswith(".new"):
        try:
            creator = ProcessRef.from_json(files.read_json(paths.SandboxDir(path).creator, "creator"))
        except (FileNotFoundError, ExecutionError, ValueError):
            creator = records.staging_creator(path.name)  # killed before it wrote the file
        if creator.alive() if creator is not None else _changed_within(min_age, now, path):
            return  # a create in progress (or, if its name says nothing, maybe one)
    if _remove(path, found):
        found.leftovers += 1


def _collect_claims(found: Collection) -> None:
    """Name claims whose sandbox no longer runs (or never will): the name is free anyway."""
    claims_dir = settings.state_dir() / "names"
    if not claims_dir.is_dir():
        return
    try:
        with names.locked():
            for app in list(os.scandir(claims_dir)):
                if not app.is_dir(follow_symlinks=False):
                    continue
                for claim in list(os.scandir(app.path)):
                    if claim.name.startswith("."):
                        continue  # a claim being written, or the leftover of one (swept below)
                    holder = names.read_claim(Path(claim.path))
                    if holder is None or not names.claim_holder_running(*holder):
                        found.claims += _remove(Path(claim.path), found)
                _sweep_temp_files(Path(app.path), TEMP_GRACE_S, time.time(), found)
                with contextlib.suppress(OSError):
                    os.rmdir(app.path)  # once the app has no claims left
    except OSError as exc:
        found.problems.append(f"could not collect the name claims in {claims_dir}: {exc.strerror or exc}")


def _sweep_temp_files(directory: Path, min_age: float, now: float, found: Collection) -> None:
    """write_json_atomic's temporary files (`.NAME.PID.RANDOM.tmp`) left by a writer that died."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False) \
                and not _changed_within(min_age, now, entry.path):
            found.leftovers += _remove(Path(entry.path), found)


def _changed_within(seconds: float, now: float, *paths: Union[str, Path]) -> bool:
    """Whether any of `paths` that exists (a directory: or its list of entries) changed in the last `seconds`."""
    for path in paths:
        try:
            if seconds > 0 and now - os.lstat(path).st_mtime < seconds:
                return True
        except OSError:
            pass
    return False


def _remove(path: Path, found: Collection) -> bool:
    """Remove a file or a tree; False (and the reason in `found`) if it could not be."""
    try:
        if path.is_dir() and not path.is_symlink():
            files.remove_tree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False  # another collection took it
    except OSError as exc:
        found.problems.append(f"could not remove {path}: {exc.strerror or exc}")
        return False
    return True


@contextlib.contextmanager
def _lock(wait: bool) -> Iterator[bool]:
    """One collection at a time per state directory; yields False if another runs (and not `wait`)."""
    try:
        # Read-only is enough for flock, and opens on a read-only disk too (the collection still reports there).
        fd = os.open(settings.state_dir() / LOCK_NAME, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        yield True  # no state directory (nothing to collect), or a read-only one without the lock file
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


# Automatic collection ----------------------------------------------------------

_running = threading.Lock()  # held while this process runs a background collection


def _reset_after_fork() -> None:
    global _running
    _running = threading.Lock()  # the thread that held it does not exist in the child


os.register_at_fork(after_in_child=_reset_after_fork)


def collect_soon() -> None:
    """Start a background collection if none ran in this state directory for the interval.
    Costs a create one stat() of the stamp file; the collection itself never delays it.
    InvalidError for a bad PYSANDBOX_GC_INTERVAL or PYSANDBOX_FINISHED_RETENTION."""
    interval, retention = bounds.get("gc_interval_s"), bounds.get("finished_retention_s")
    if interval == 0:
        return
    state = settings.state_dir()
    try:
        if time.time() - os.stat(state / STAMP_NAME).st_mtime < interval:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    if not _running.acquire(blocking=False):
        return
    try:
        threading.Thread(target=_collect_in_background, args=(state, interval, retention), name="pysandbox-gc",
                         daemon=True).start()
    except BaseException:
        _running.release()
        raise


def _collect_in_background(state: Path, interval: int, retention: int) -> None:
    try:
        with settings.pinned_state_dir(state), _lock(wait=False) as mine:
            if not mine or not _claim_turn(state / STAMP_NAME, interval):
                return
            found = Collection()
            _collect(retention, retention, found)
            for line in found.problems:
                logger.warning("pysandbox gc: %s", line)
    except Exception:  # never let a background collection's failure surface in a create
        logger.warning("pysandbox gc: the automatic collection failed", exc_info=True)
    finally:
        _running.release()


def _claim_turn(stamp: Path, interval: int) -> bool:
    """Under the lock: whether the last collection is older than the interval; if so, restamp."""
    try:
        if time.time() - os.stat(stamp).st_mtime < interval:
            return False  # another process ran one while we waited for our turn
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        os.utime(stamp)
    except OSError as exc:
        # A read-only disk: nothing a collection could do there now, and no stamp to stop the next
        # create from trying again. Any other failure (a full disk) is what a collection is for.
        return exc.errno != errno.EROFS
    return True
