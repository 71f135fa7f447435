"""Turn a sandbox's Resources into what enforces them at launch.

cpu, memory and pids go to the sandbox's cgroup (runtime/cgroups), which the
supervisor's runner joins before anything of the sandbox runs. Where no pids
cgroup can be made (an unprivileged caller on a cgroup v1 host), the pids
limit falls back to RLIMIT_NPROC, set by the supervisor: the kernel counts it
per host uid, so the sandbox may add `pids_limit` processes to those its uid
already has. The disk limit is the size of the sandbox's root tmpfs (bwrap.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from .._state.records import ExitStatus
from ..exception import ExecutionError, InvalidError
from ..resources import Resources, SandboxStats
from . import cgroups


def supervisor_options(directory: Path, resources: Resources,
                       uid: int) -> Tuple[List[str], Optional[cgroups.SandboxCgroup]]:
    """(the supervisor's options, the cgroup made for the sandbox or None).
    The caller removes the cgroup with cgroups.remove if the supervisor never starts."""
    try:
        cgroup = cgroups.create(directory.name, resources, listed_in=directory)
    except InvalidError:
        if cgroups.required_controllers(resources):
            raise
        cgroup = None  # e.g. a v2 tree that refuses controllers: the pids limit falls back
    options: List[str] = []
    if cgroup is not None:
        for path in cgroup.unique_dirs():
            options += ["--cgroup", path]
    if resources.pids_limit is not None and (cgroup is None or "pids" not in cgroup.dirs):
        options += ["--nproc", str(resources.pids_limit + processes_of(uid))]
    return options, cgroup


def processes_of(uid: int) -> int:
    """How many tasks the host uid runs now: what RLIMIT_NPROC counts, threads included (a Go
    program's or a thread pool's count many times over its one process)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                pass  # exited meanwhile
    return count


def stats(directory: Path, finished: Callable[[], Optional[ExitStatus]]) -> SandboxStats:
    """Live from the cgroup while the sandbox runs, else from its exit record (also when the
    cgroup list is not to be trusted: a foreign cgroup's numbers are not the sandbox's)."""
    try:
        cgroup = cgroups.load(directory)
    except ExecutionError as exc:
        warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
        cgroup = None
    if finished() is None and cgroup is not None:
        live = cgroups.read_stats(cgroup)
        if all(os.path.isdir(path) for path in cgroup.unique_dirs()):  # else it ended meanwhile
            return live
    status = finished()
    if status is None or (status.cpu_seconds, status.memory_peak, status.oom_kills) == (None, None, None):
        return SandboxStats(None, None, None, None, None)  # no cgroup: nothing was counted
    return SandboxStats(status.cpu_seconds, 0, status.memory_peak, 0, status.oom_kills)
