"""Starting a sandbox, abandoning a half-made one, and waiting for one to end.

start() is the whole create: a sandbox directory, a name claim, the runtime's
launch and the record, undone by abandon() if any step fails. The supervisor
is reached through a pidfd (opened, then checked to be the supervisor, so a
reused pid is never signalled).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Optional

import attrs

from .. import _aio
from .._state import files, names, paths, records
from .._state.proc import ProcessRef
from ..runtime import launch, layout, reconcile
from .spec import SandboxSpec

SUPERVISOR_EXIT_PATIENCE_S = 5  # from its exit record to its exit: a few system calls


@attrs.frozen
class Started:
    """A started sandbox. `launched` is its supervisor handle: for a tethered
    sandbox, `launched.abandon()` cuts the tether and the sandbox ends."""

    record: records.SandboxRecord
    launched: launch.Launched


def start(spec: SandboxSpec, app_id: str, app_name: Optional[str], tethered: bool = False) -> Started:
    """tethered (build sandboxes): never confirmed, so the sandbox ends when its creator
    dies or calls `started.launched.abandon()`."""
    sandbox_id = files.new_id("sb-")
    directory = records.make_sandbox_dir(sandbox_id)
    env = {**(layout.default_env() if spec.rootfs is None else spec.rootfs.env), **spec.env}
    launched = None
    claimed = False
    try:
        if spec.name is not None:
            names.claim_name(app_id, spec.name, sandbox_id)
            claimed = True
        launched = launch.launch(directory, spec, env, tethered)
        launch.start_spare(launched)  # the next create's, once an interrupt there would find `launched`
        record = records.SandboxRecord(
            sandbox_id=sandbox_id, app_id=app_id, app_name=app_name, name=spec.name, tags=spec.tags,
            created_at=time.time(), timeout=spec.timeout, supervisor=launched.supervisor,
            entrypoint=spec.entrypoint, workdir=spec.workdir or "/",
            image_id="host" if spec.rootfs is None else spec.rootfs.image_id, verbose=spec.verbose,
            tunnels=[list(t) for t in launched.tunnels],
            readiness_probe=None if spec.readiness_probe is None else spec.readiness_probe.to_json(),
            runner=spec.runner, ptys_max=launched.ptys_max,  # an exec out of terminals names it
        )
        records.write_record(record)
        if not tethered:
            launched.confirm()
    except BaseException:
        abandon(directory, launched)
        if claimed:
            names.release_name(app_id, spec.name, sandbox_id)
        raise
    return Started(record, launched)


def abandon(directory: Path, launched: Optional[launch.Launched]) -> None:
    """A create that failed half-way: stop what started, remove what was made. Never raises:
    the create's own error is the one to report (what is left here, gc collects)."""
    if launched is not None:
        try:
            paths.SandboxDir(directory).record.unlink(missing_ok=True)  # else it would confirm the sandbox
        except OSError:
            signal_supervisor(launched.supervisor, signal.SIGTERM)  # (a read-only disk): end it all the same
        launched.abandon()  # the supervisor tears the sandbox down on its own
        _aio.run_sync(_exited(launched.supervisor))
        launch.reap_finished()
    with contextlib.suppress(OSError):
        files.remove_tree(directory)


def finished(record: records.SandboxRecord) -> Optional[records.ExitStatus]:
    """The exit status if the sandbox has finished, else None."""
    launch.reap_finished()
    return records.finished(record)


def signal_running(record: records.SandboxRecord) -> bool:
    """terminate()'s signal: SIGTERM to the supervisor of a sandbox without an exit record; False if it has
    one or its supervisor is gone (then finished() says how it ended). Whether the supervisor still runs is
    signal_supervisor's own check, made once after opening its pidfd (finished() would make it a second time)."""
    launch.reap_finished()
    return records.read_exit(record.sandbox_id) is None and signal_supervisor(record.supervisor, signal.SIGTERM)


async def wait(record: records.SandboxRecord) -> records.ExitStatus:
    """The exit status, once the sandbox has finished (the teardown of a lost supervisor repaired)."""
    status = finished(record)
    while status is None:
        await _exited(record.supervisor)
        status = finished(record)
    if status.lost:
        repair(record)
    else:
        await settled(record)
    return status


async def settled(record: records.SandboxRecord) -> None:
    """Until the supervisor of a finished sandbox has exited. It writes the exit record as its
    last step, then exits: once this returns nothing of the sandbox runs (bounded: one stuck
    past its record is not waited for)."""
    await _exited(record.supervisor, timeout=SUPERVISOR_EXIT_PATIENCE_S)


async def _exited(supervisor: ProcessRef, timeout: Optional[float] = None) -> None:
    """Until the supervisor has exited (or `timeout` passed); at once if it is gone already."""
    fd = pidfd(supervisor)
    if fd is not None:
        try:
            await _aio.readable(fd, timeout=timeout)
        finally:
            os.close(fd)


def repair(record: records.SandboxRecord) -> None:
    for problem in reconcile.repair(record):
        warnings.warn(problem, RuntimeWarning, stacklevel=3)


def pidfd(ref: ProcessRef) -> Optional[int]:
    """A pidfd for the supervisor, or None if it is gone (checked after opening: no pid reuse race)."""
    try:
        fd = os.pidfd_open(ref.pid)
    except ProcessLookupError:
        return None
    if not ref.alive(records.SUPERVISOR_PROGRAM):
        os.close(fd)
        return None
    return fd


def signal_supervisor(ref: ProcessRef, signum: int) -> bool:
    """Send the supervisor `signum`; False if it is gone."""
    fd = pidfd(ref)
    if fd is None:
        return False
    try:
        signal.pidfd_send_signal(fd, signum)
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
    return True
