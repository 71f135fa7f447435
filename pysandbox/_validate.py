"""Checks several public entry points share, so each says the same thing the same way.

One function per rule; each raises InvalidError naming the argument and what
to pass, before any work starts.
"""

from __future__ import annotations

import math
import os
import re
import sys
import warnings
from collections import abc
from typing import Any, Dict, Optional

from .exception import DeprecationError, InvalidError

MAX_SECONDS = (1 << 32) // 1000 - 1  # a timeout travels to init in milliseconds, as 32 bits
# Modal's object names; also file names in the state directory, so "." and ".." are not names.
_OBJECT_NAME = re.compile(r"^(?!\.{1,2}\Z)[A-Za-z0-9._-]{1,64}\Z")
_ID_PREFIXES = {"ap-": "an App", "vo-": "a Volume"}  # names that would read as these ids are refused
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def deprecated(date: str, message: str) -> None:
    """Modal's deprecation_warning: a DeprecationError (a UserWarning) whose message starts with the
    date Modal deprecated the call on, attributed to the first line outside pysandbox (the caller's,
    through either way of calling: blocking or .aio)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    warnings.warn_explicit(f"{date}: {message}", DeprecationError, frame.f_code.co_filename, frame.f_lineno,
                           module=frame.f_globals.get("__name__"), registry=frame.f_globals.setdefault(
                               "__warningregistry__", {}))


def positive_seconds(value: Any, what: str = "timeout", *, allow_none: bool = False,
                     at_most: Optional[float] = MAX_SECONDS) -> Optional[float]:
    """`value` as a number of seconds: positive, finite, at most `at_most` (by default
    MAX_SECONDS, about 49 days: what init can count; None: no bound)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            value <= 0 or (at_most is not None and value > at_most):
        bound = "" if at_most is None else f" (at most {at_most})"
        more = " or None" if allow_none else ""
        raise InvalidError(f"{what} must be a positive number of seconds{bound}{more}, got {value!r}")
    return value


def flag(value: Any, what: str) -> bool:
    """`value` as a bool: True or False only, so that `text="no"` is an error, not True."""
    if not isinstance(value, bool):
        raise InvalidError(f"{what} must be True or False, got {value!r}")
    return value


def whole_number(value: Any, what: str, *, minimum: int = 1, maximum: Optional[int] = None, why: str = "") -> int:
    """`value` as an int from `minimum` to `maximum` (a bool is not a number here); `why`
    explains the bound in the message."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or \
            (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"of at least {minimum}"
        raise InvalidError(f"{what} must be a whole number {bound}{why}, got {value!r}")
    return value


def is_object_name(name: Any, *, id_prefix: str = "", leading_dot: bool = True) -> bool:
    """Whether `name` may name an object: up to 64 letters, digits, '-', '_' and '.', neither
    '.' nor '..', not starting with `id_prefix` (its kind's ids), nor with '.' unless `leading_dot`."""
    return (isinstance(name, str) and bool(_OBJECT_NAME.match(name))
            and not (id_prefix and name.startswith(id_prefix)) and (leading_dot or not name.startswith(".")))


def object_name(name: Any, kind: str, *, id_prefix: str = "", leading_dot: bool = True) -> str:
    """`name` if it may name a `kind` ("Sandbox", "Volume", ...) (is_object_name), else InvalidError."""
    if not is_object_name(name, id_prefix=id_prefix, leading_dot=leading_dot):
        rules = ["be at most 64 characters long", "be neither '.' nor '..'"]
        rules += [] if leading_dot else ["not start with '.'"]
        rules += [f"not look like {_ID_PREFIXES[id_prefix]} ID ({id_prefix}...)"] if id_prefix else []
        raise InvalidError(f"Invalid {kind} name: {name!r}. Names may contain only letters, digits, '-', '_' "
                           f"and '.', {', '.join(rules[:-1])} and {rules[-1]}.")
    return name


def env_mapping(env: Any, what: str = "env") -> Dict[str, str]:
    """`env` as environment variables: a mapping of names (letters, digits and '_', not starting
    with a digit) to str values without NUL bytes; None values are dropped."""
    if not isinstance(env, abc.Mapping):
        raise InvalidError(f"{what} must be a dict of str to str, got {type(env).__name__}")
    checked: Dict[str, str] = {}
    for key, value in env.items():
        if value is None:
            continue
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise InvalidError(f"Invalid environment variable name {key!r}: use letters, digits and '_', "
                               "not starting with a digit.")
        if not isinstance(value, str):
            raise InvalidError(f"Environment variable {key} must be a string, got {type(value).__name__}")
        if "\0" in value:
            raise InvalidError(f"Environment variable {key} must not contain NUL bytes.")
        checked[key] = value
    return checked
