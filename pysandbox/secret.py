"""Secrets: named sets of environment variables injected into sandboxes.

Values are kept out of every repr, log line and record: only key names show.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Optional

from .exception import InvalidError

_DICT_ERROR = "the env_dict argument to Secret has to be a dict[str, Union[str, None]]"


class Secret:
    """A set of environment variables. Build one with a `Secret.from_*` constructor."""

    def __init__(self, env: Dict[str, str], description: str) -> None:
        self._env = dict(env)
        self._description = description

    @staticmethod
    def from_dict(env_dict: Optional[Dict[str, Optional[str]]] = None) -> "Secret":
        env_dict = {} if env_dict is None else env_dict
        if not isinstance(env_dict, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in env_dict.items()
        ):
            raise InvalidError(f"{_DICT_ERROR}, got {type(env_dict).__name__}")
        env = {k: v for k, v in env_dict.items() if v is not None}
        return Secret(env, f"Secret.from_dict([{', '.join(env)}])")

    @staticmethod
    def from_local_environ(env_keys: Iterable[str]) -> "Secret":
        keys = list(env_keys)
        if not all(isinstance(k, str) for k in keys):
            raise InvalidError("Secret.from_local_environ takes a list of environment variable names.")
        missing = [k for k in keys if k not in os.environ]
        if missing:
            raise InvalidError(f"Could not find local environment variable {missing[0]!r} for Secret.from_local_environ")
        return Secret({k: os.environ[k] for k in keys}, f"Secret.from_local_environ([{', '.join(keys)}])")

    def env(self) -> Dict[str, str]:
        """The variables this secret injects (values included: never log this)."""
        return dict(self._env)

    def __repr__(self) -> str:
        return self._description
