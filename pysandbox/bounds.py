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
    "exec_unread_output": Bound(
        "PYSANDBOX_EXEC_UNREAD_OUTPUT_MAX", 64 * _MiB,
        "bytes of one exec's stdout (or stderr) kept in memory while nobody reads it: wait() or poll() "
        "before reading, or reading the other stream; past it the rest of that stream is dropped"),
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
