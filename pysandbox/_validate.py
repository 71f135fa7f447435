"""Checks several public entry points share, so each says the same thing the same way."""

from __future__ import annotations

import math
from typing import Any, Optional

from .exception import InvalidError

MAX_SECONDS = (1 << 32) // 1000 - 1  # a timeout travels to init in milliseconds, as 32 bits


def positive_seconds(value: Any, what: str = "timeout", *, allow_none: bool = False) -> Optional[float]:
    """`value` as a number of seconds: positive, finite, at most MAX_SECONDS (about 49 days)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            not 0 < value <= MAX_SECONDS:
        more = " or None" if allow_none else ""
        raise InvalidError(f"{what} must be a positive number of seconds (at most {MAX_SECONDS}){more}, "
                           f"got {value!r}")
    return value
