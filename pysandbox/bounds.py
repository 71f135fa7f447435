"""Bounds on what a sandbox, an image or a volume can make the host read, write or keep.

Everything on the far side of the trust boundary is hostile (docs/SECURITY.md), so
every read from it, and every resource it can make the host spend, has a bound here:
a documented default, overridable by an environment variable read on each call
(so tests and long-lived services can change it). `get(name)` returns the bound in
its unit (bytes, seconds or a count); hitting one is always a clear error naming it.
"""

from __future__ import annotations

import os
from typing import Dict, NamedTuple

from .exception import InvalidError


class Bound(NamedTuple):
    variable: str
    default: int
    meaning: str


_MiB = 1 << 20
_GiB = 1 << 30

BOUNDS: Dict[str, Bound] = {
    "gc_interval_s": Bound(
        "PYSANDBOX_GC_INTERVAL", 60,
        "seconds between the automatic collections that creates start in the background, per state directory "
        "(0: never; `pysandbox gc` collects on demand)"),
    "finished_retention_s": Bound(
        "PYSANDBOX_FINISHED_RETENTION", 600,
        "seconds the automatic collection keeps a finished sandbox's directory (its result and output, for "
        "from_id and `pysandbox ls --all`) and any other litter; `pysandbox gc` removes finished sandboxes at once"),
}


def get(name: str) -> int:
    """The bound called `name`: its environment variable if set (a non-negative integer), else its default."""
    bound = BOUNDS[name]
    raw = os.environ.get(bound.variable)
    if raw is None or raw == "":
        return bound.default
    if not raw.isdigit():
        raise InvalidError(f"{bound.variable}={raw!r} must be a non-negative integer ({bound.meaning}).")
    return int(raw)


def variable(name: str) -> str:
    """The environment variable that changes the bound `name`, for error messages."""
    return BOUNDS[name].variable
