"""cgroup v1: one hierarchy per controller (cpu and cpuacct often co-mounted).

Sandbox cgroups go in `<hierarchy>/pysandbox/<sandbox id>`. v1 hierarchies are
writable only by root (nothing delegates them), so an unprivileged caller
gets no cgroup here.
"""

from __future__ import annotations

import functools
import os
from typing import Dict, List, Tuple

from ...resources import Resources, SandboxStats
from ._common import Host, read_in

CFS_PERIOD_US = 100_000
WANTED = ("cpu", "cpuacct", "memory", "pids")


def probe(mounts, parent_name: str) -> Host:
    parents: Dict[str, str] = {}
    for controller in WANTED:
        mount = next((m for m in mounts if controller in m.controllers), None)
        if mount is None:
            continue
        parent = os.path.join(mount.path, parent_name)
        if os.access(parent if os.path.isdir(parent) else mount.path, os.W_OK):
            parents[controller] = parent
    problem = ""
    if not parents:
        hierarchies = ", ".join(sorted({m.path for m in mounts}))
        problem = f"this host's cgroup v1 hierarchies ({hierarchies}) are writable only by root"
    return Host(1 if parents else 0, parents, problem)


def prepare_parents(host: Host) -> None:
    for parent in set(host.parents.values()):
        os.makedirs(parent, mode=0o755, exist_ok=True)


def limit_writes(resources: Resources) -> List[Tuple[str, str, str]]:
    """(controller, file, value), in the order the kernel accepts them."""
    writes = []
    if resources.cpu_request is not None:
        writes.append(("cpu", "cpu.shares", str(max(2, round(resources.cpu_request * 1024)))))
    if resources.cpu_limit is not None:
        writes.append(("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US)))
        writes.append(("cpu", "cpu.cfs_quota_us", str(round(resources.cpu_limit * CFS_PERIOD_US))))
    if resources.memory_request is not None:
        writes.append(("memory", "memory.soft_limit_in_bytes", str(resources.memory_request << 20)))
    if resources.memory_limit is not None:
        writes.append(("memory", "memory.limit_in_bytes", str(resources.memory_limit << 20)))
        writes.append(("memory", "memory.memsw.limit_in_bytes", str(resources.memory_limit << 20)))
    if resources.pids_limit is not None:
        writes.append(("pids", "pids.max", str(resources.pids_limit)))
    return writes


def read_stats(dirs: Dict[str, str]) -> SandboxStats:
    number = functools.partial(read_in, dirs)

    cpu_ns = number("cpuacct", "cpuacct.usage")
    return SandboxStats(
        cpu_seconds=None if cpu_ns is None else cpu_ns / 1e9,
        memory_current=number("memory", "memory.usage_in_bytes"),
        memory_peak=number("memory", "memory.max_usage_in_bytes"),
        pids=number("pids", "pids.current"),
        oom_kills=number("memory", "memory.oom_control", "oom_kill"),
    )
