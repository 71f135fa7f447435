"""What a sandbox may use (cpu, memory, processes, disk) and what it has used.

`Resources` is built from create()'s `cpu=`, `memory=` and `ephemeral_disk=`
and validated at construction, so every mistake is an InvalidError before any
work starts. As on Modal, a plain number is a *request* (a share of the
machine under contention: cpu weight, memory protection) and a
`(request, limit)` tuple also sets a hard *limit* (cpu throttling, the
out-of-memory killer). The limits are enforced by runtime/cgroups.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Tuple

import attrs

from ._validate import whole_number
from .exception import InvalidError
from .types import SandboxStats as SandboxStats  # where the runtime and tests import it

MIN_CPU_LIMIT = 0.01  # the kernel's smallest cfs quota is 1 ms per 100 ms period
MIN_MEMORY_LIMIT_MIB = 16  # room for the sandbox to start a shell and Python (they need about 8)
DEFAULT_PIDS_LIMIT = 2048  # as podman's default: a fork bomb stays inside
MIN_PIDS_LIMIT = 3  # bwrap, the sandbox's init and one process


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidError(f"{what} must be a number, got {value!r}")
    if value <= 0:
        raise InvalidError(f"{what} must be positive, got {value!r}")
    return value


def _request_limit(value: Any, what: str, unit: str, integer: bool) -> Tuple[Optional[float], Optional[float]]:
    """None, a request, or (request, limit) -> (request, limit)."""
    if value is None:
        return None, None
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InvalidError(f"{what} must be a number or a (request, limit) pair, got {len(value)} values")
        request, limit = (_number(v, what) for v in value)
    else:
        request, limit = _number(value, what), None
    if integer and any(v is not None and v != int(v) for v in (request, limit)):
        raise InvalidError(f"{what} is a whole number of {unit}, got {value!r}")
    if limit is not None and limit < request:
        raise InvalidError(f"{what} limit ({limit} {unit}) must be at least its request ({request} {unit})")
    return request, limit


def check_pids_limit(value: Any) -> Optional[int]:
    if value is None:
        return None
    return whole_number(value, "the pids limit", minimum=MIN_PIDS_LIMIT,
                        why=" (bwrap, the sandbox's init and one process)")


def default_pids_limit() -> int:
    """PYSANDBOX_PIDS_LIMIT, else DEFAULT_PIDS_LIMIT."""
    configured = os.environ.get("PYSANDBOX_PIDS_LIMIT")
    if not configured:
        return DEFAULT_PIDS_LIMIT
    if not configured.isdigit():
        raise InvalidError(f"PYSANDBOX_PIDS_LIMIT={configured!r} must be a whole number of at least {MIN_PIDS_LIMIT}.")
    return check_pids_limit(int(configured))


@attrs.frozen
class Resources:
    """cpu in cores, memory and disk in MiB; None means "not asked for"."""

    cpu_request: Optional[float] = None
    cpu_limit: Optional[float] = None
    memory_request: Optional[int] = None
    memory_limit: Optional[int] = None
    pids_limit: Optional[int] = attrs.field(default=None, converter=check_pids_limit)
    ephemeral_disk: Optional[int] = None

    @classmethod
    def from_options(cls, cpu: Any = None, memory: Any = None, ephemeral_disk: Any = None,
                     pids_limit: Optional[int] = None) -> "Resources":
        cpu_request, cpu_limit = _request_limit(cpu, "cpu", "cores", integer=False)
        if cpu_limit is not None and cpu_limit < MIN_CPU_LIMIT:
            raise InvalidError(f"cpu limit must be at least {MIN_CPU_LIMIT} cores, got {cpu_limit}")
        memory_request, memory_limit = _request_limit(memory, "memory", "MiB", integer=True)
        if memory_limit is not None and memory_limit < MIN_MEMORY_LIMIT_MIB:
            raise InvalidError(f"memory limit must be at least {MIN_MEMORY_LIMIT_MIB} MiB for the sandbox to "
                               f"start, got {memory_limit} MiB")
        disk = None if ephemeral_disk is None else _number(ephemeral_disk, "ephemeral_disk")
        if disk is not None and disk != int(disk):
            raise InvalidError(f"ephemeral_disk is a whole number of MiB, got {ephemeral_disk!r}")
        return cls(
            cpu_request=cpu_request, cpu_limit=cpu_limit,
            memory_request=None if memory_request is None else int(memory_request),
            memory_limit=None if memory_limit is None else int(memory_limit),
            pids_limit=pids_limit, ephemeral_disk=None if disk is None else int(disk),
        )
