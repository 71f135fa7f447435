"""Secrets: named sets of environment variables injected into sandboxes.

Values are kept out of every repr, log line, record and exception message:
only key names show. Named secrets live in the state directory, one file each,
mode 0600, written atomically.
"""

from __future__ import annotations

import os
import time
from collections import abc
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from . import settings
from ._aio import synchronized, synchronized_static
from ._state import files, names
from ._validate import env_mapping, object_name
from .exception import AlreadyExistsError, InvalidError, NotFoundError, UnimplementedError
from .types import SecretInfo

_DICT_ERROR = "the env_dict argument to Secret has to be a dict[str, Union[str, None]]"


def _check_dict(env_dict) -> Dict[str, str]:
    if not isinstance(env_dict, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in env_dict.items()
    ):
        raise InvalidError(f"{_DICT_ERROR}, got {type(env_dict).__name__}")
    return {k: v for k, v in env_dict.items() if v is not None}


def _secret_path(name: str) -> Path:
    return settings.state_dir() / "secrets" / f"{object_name(name, 'Secret')}.json"


def _read_named(name: str) -> dict:
    try:
        return files.read_json(_secret_path(name), "secret")
    except FileNotFoundError:
        raise NotFoundError(f"Secret {name!r} not found; create it with Secret.objects.create or "
                            f"`pysandbox secret create {name} KEY=VALUE`.") from None


def _write_named(name: str, record: dict) -> None:
    files.ensure_dir(_secret_path(name).parent, 0o700)
    files.write_json_atomic(_secret_path(name), record, mode=0o600)


def store(name: str, env_dict: Mapping[str, Optional[str]], *, existing: str = "raise") -> None:
    """Write the named secret `name`. One that exists already is, by `existing`: "raise" an
    AlreadyExistsError, "keep" it as it is (Modal's allow_existing=True: a no-op), or "replace" it
    (`pysandbox secret create --force`)."""
    env = _check_dict(env_dict)
    path = _secret_path(name)
    with names.locked():
        if path.exists() and existing != "replace":
            if existing == "keep":
                return
            raise AlreadyExistsError(f"Secret {name!r} already exists; pass allow_existing=True to keep it "
                                     "without an error, or update() it (`pysandbox secret create --force` "
                                     "replaces it).")
        _write_named(name, {"name": name, "created_at": time.time(), "env": env})


class _SecretManager:
    """`Secret.objects`: create, delete and list named secrets. `environment_name` and `client` name
    Modal's environments and API client: accepted, with no local meaning (one state directory)."""

    @synchronized_static
    async def create(name: str, env_dict: Dict[str, str], *, allow_existing: bool = False,
                     environment_name: Optional[str] = None, client: Any = None) -> None:
        """A new named secret; with allow_existing=True an existing one is kept as it is (Modal: "existing
        values are kept", the env_dict ignored)."""
        store(name, env_dict, existing="keep" if allow_existing else "raise")

    @synchronized_static
    async def delete(name: str, *, allow_missing: bool = False, environment_name: Optional[str] = None,
                     client: Any = None) -> None:
        try:
            os.unlink(_secret_path(name))
        except FileNotFoundError:
            if not allow_missing:
                raise NotFoundError(f"Secret {name!r} not found") from None

    @synchronized_static
    async def list(*, max_objects: Optional[int] = None, created_before: Any = None, environment_name: str = "",
                   client: Any = None) -> List["Secret"]:
        if created_before is not None:
            raise UnimplementedError("Secret.objects.list(created_before=...) is not supported by pysandbox")
        directory = settings.state_dir() / "secrets"
        names = sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []
        return [Secret.from_name(name) for name in names[:max_objects]]


class Secret:
    """A set of environment variables. Build one with a `Secret.from_*` constructor."""

    objects = _SecretManager()

    def __init__(self, load: Callable[[], Dict[str, str]], description: str, name: Optional[str] = None) -> None:
        # Named and dotenv secrets are read when used (Modal hydrates them lazily).
        self._load, self._description, self._name = load, description, name

    @property
    def name(self) -> Optional[str]:
        return self._name

    @staticmethod
    def from_dict(env_dict: Dict[str, Optional[str]] = {}) -> "Secret":
        env = _check_dict(env_dict)
        return Secret(lambda: dict(env), f"Secret.from_dict([{', '.join(env)}])")

    @staticmethod
    def from_name(name: str, *, environment_name: Optional[str] = None, required_keys: Sequence[str] = [],
                  client: Any = None) -> "Secret":
        """A secret stored with Secret.objects.create; NotFoundError when first used if missing."""
        _secret_path(name)

        def load() -> Dict[str, str]:
            env = dict(_read_named(name)["env"])
            missing = [key for key in required_keys if key not in env]
            if missing:
                raise NotFoundError(f"Secret {name!r} is missing the required keys {', '.join(missing)}")
            return env

        return Secret(load, f"Secret.from_name({name!r})", name)

    @staticmethod
    def from_dotenv(path: Union[str, os.PathLike[str], None] = None, *, filename: str = ".env",
                    client: Any = None) -> "Secret":
        """Variables from a .env file, looked for upward from `path` (or the working directory)."""
        try:
            import dotenv
        except ImportError:
            raise ImportError("Secret.from_dotenv needs python-dotenv: pip install python-dotenv") from None
        start = Path(path) if path is not None else Path.cwd()
        if start.is_file():
            start = start.parent

        def load() -> Dict[str, str]:
            for directory in (start, *start.parents):
                candidate = directory / filename
                if candidate.is_file():
                    return {k: v or "" for k, v in dotenv.dotenv_values(candidate).items()}
            return {}

        return Secret(load, f"Secret.from_dotenv({filename!r})")

    @synchronized
    async def update(self, env_dict: Dict[str, str]) -> None:
        """Merge into a named secret, like dict.update."""
        if self._name is None:
            raise InvalidError("Only a named secret (Secret.from_name) can be updated.")
        env = _check_dict(env_dict)
        with names.locked():
            record = _read_named(self._name)
            record["env"].update(env)
            _write_named(self._name, record)

    @synchronized
    async def info(self, *, refresh: bool = False) -> SecretInfo:
        """The secret's name, creation time and keys (always read afresh: `refresh` changes nothing here)."""
        if self._name is None:
            raise InvalidError("Only a named secret (Secret.from_name) has info.")
        record = _read_named(self._name)
        return SecretInfo(self._name, record["created_at"], sorted(record["env"]))

    @staticmethod
    def from_local_environ(env_keys: Iterable[str]) -> "Secret":
        keys = list(env_keys) if isinstance(env_keys, abc.Iterable) and not isinstance(env_keys, str) else None
        if keys is None or not all(isinstance(k, str) for k in keys):
            raise InvalidError("Secret.from_local_environ takes a list of environment variable names.")
        missing = [k for k in keys if k not in os.environ]
        if missing:
            raise InvalidError(f"Could not find local environment variable {missing[0]!r} "
                               "for Secret.from_local_environ")
        env = {k: os.environ[k] for k in keys}
        return Secret(lambda: dict(env), f"Secret.from_local_environ([{', '.join(keys)}])")

    def env(self) -> Dict[str, str]:
        """The variables this secret injects (values included: never log this)."""
        return self._load()

    def __repr__(self) -> str:
        return self._description


def merge_env(env: Optional[Mapping[str, Optional[str]]], secrets: Optional[Sequence[Secret]]) -> Dict[str, str]:
    """The environment a sandbox, an exec or an image step gets: secrets first, then `env` on top;
    None values are dropped. Keys and values validated."""
    merged: Dict[str, str] = {}
    # Modal types it Collection[Secret]: a list, a tuple or a set.
    if secrets is not None and (not isinstance(secrets, abc.Collection)
                                or isinstance(secrets, (str, bytes, abc.Mapping))):
        raise InvalidError(f"secrets must be a list of pysandbox.Secret objects, got {type(secrets).__name__}")
    for secret in secrets or ():
        if not isinstance(secret, Secret):
            raise InvalidError(f"secrets must be a list of pysandbox.Secret objects, got {type(secret).__name__}")
        merged.update(secret.env())
    if env is not None:
        merged.update(env_mapping(env))
    return env_mapping(merged)  # the secrets' variables too
