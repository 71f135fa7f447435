"""cgroup v2: one unified hierarchy.

Sandbox cgroups go in `<base>/pysandbox/<sandbox id>`, where base is the
hierarchy's root for root, and for anyone else the top of the subtree
delegated to them (systemd's user@UID.service, or a `Delegate=yes` unit): the
highest ancestor of their own cgroup that they own. `pysandbox/` holds no
process, so it may enable controllers for its children (the no-internal-
processes rule); each sandbox's cgroup is a leaf.
"""

from __future__ import annotations

import errno
import functools
import os
from typing import Dict, List, Optional, Tuple

from ...exception import InvalidError
from ...resources import Resources, SandboxStats
from ._common import Host, read_in, read_number

CPU_PERIOD_US = 100_000
WANTED = ("cpu", "memory", "pids")


def delegation_root(mount: str, own: str, euid: int) -> Optional[str]:
    """The highest cgroup at or above `own` that this user owns and may write, or None."""
    found = None
    path = os.path.normpath(mount + "/" + own.lstrip("/"))
    while True:
        try:
            owner = os.stat(path).st_uid
        except OSError:
            break
        if owner != euid or not os.access(path, os.W_OK) or not os.access(os.path.join(path, "cgroup.procs"), os.W_OK):
            break
        found = path
        if path == mount:
            break
        path = os.path.dirname(path)
    return found


def _read_words(path: str) -> List[str]:
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return []


def probe(mount: str, own: str, parent_name: str) -> Host:
    euid = os.geteuid()
    if euid == 0 and os.access(mount, os.W_OK):
        base = mount
    else:
        base = delegation_root(mount, own, euid)
    if base is None:
        return Host(0, {}, f"your cgroup {own} is not delegated to uid {euid} (it is not owned by you)")
    available = set(_read_words(os.path.join(base, "cgroup.controllers")))
    parent = os.path.join(base, parent_name)
    parents = {c: parent for c in WANTED if c in available}
    missing = [c for c in WANTED if c not in available]
    problem = f"the {', '.join(missing)} controller is not delegated to {base}" if missing else ""
    return Host(2 if parents else 0, parents, problem)


def _enable(directory: str, controllers: List[str]) -> None:
    """Turn `controllers` on for the children of `directory`, unless they already are."""
    enabled = set(_read_words(os.path.join(directory, "cgroup.subtree_control")))
    wanted = [c for c in controllers if c not in enabled]
    if not wanted:
        return
    try:
        with open(os.path.join(directory, "cgroup.subtree_control"), "w") as f:
            f.write(" ".join(f"+{c}" for c in wanted))
    except OSError as exc:
        why = ("it has processes of its own (cgroup v2 allows controllers only for cgroups without "
               "processes; move them into a child cgroup)") if exc.errno == errno.EBUSY else exc.strerror
        raise InvalidError(f"cannot enable the {', '.join(wanted)} controller in {directory}: {why}.") from None


def prepare_parents(host: Host) -> None:
    """`pysandbox/` with the controllers on for its children (and for itself, in its parent)."""
    parent = next(iter(host.parents.values()))
    controllers = sorted(host.parents)
    _enable(os.path.dirname(parent), controllers)
    try:
        os.mkdir(parent, 0o755)
    except FileExistsError:
        pass
    _enable(parent, controllers)


def limit_writes(resources: Resources) -> List[Tuple[str, str, str]]:
    """(controller, file, value) for the limits asked for."""
    writes = []
    if resources.cpu_request is not None:
        # weight 100 is one default share; 1..10000 is the kernel's range
        writes.append(("cpu", "cpu.weight", str(min(10000, max(1, round(resources.cpu_request * 100))))))
    if resources.cpu_limit is not None:
        writes.append(("cpu", "cpu.max", f"{round(resources.cpu_limit * CPU_PERIOD_US)} {CPU_PERIOD_US}"))
    if resources.memory_request is not None:
        writes.append(("memory", "memory.low", str(resources.memory_request << 20)))
    if resources.memory_limit is not None:
        writes.append(("memory", "memory.max", str(resources.memory_limit << 20)))
        writes.append(("memory", "memory.swap.max", "0"))
    if resources.pids_limit is not None:
        writes.append(("pids", "pids.max", str(resources.pids_limit)))
    return writes


def read_stats(dirs: Dict[str, str]) -> SandboxStats:
    number = functools.partial(read_in, dirs)

    directory = next(iter(dirs.values()), None)
    cpu_us = None if directory is None else read_number(os.path.join(directory, "cpu.stat"), "usage_usec")
    return SandboxStats(
        cpu_seconds=None if cpu_us is None else cpu_us / 1e6,
        memory_current=number("memory", "memory.current"),
        memory_peak=number("memory", "memory.peak"),
        pids=number("pids", "pids.current"),
        oom_kills=number("memory", "memory.events", "oom_kill"),
    )
