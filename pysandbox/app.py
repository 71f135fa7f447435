"""Apps: the named groups sandboxes belong to."""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

from ._aio import context, synchronized_static
from ._state import apps, files
from ._validate import flag, object_name
from .exception import InvalidError, NotFoundError


class App:
    """An App. Sandboxes need one: `App.lookup(name, create_if_missing=True)`."""

    def __init__(self, name: Optional[str] = None, *, tags: Optional[dict] = None, image: Any = None,
                 secrets: Sequence[Any] = [], volumes: dict = {}, include_source: bool = True) -> None:
        """Modal's constructor. tags, image, secrets, volumes and include_source are the defaults of the
        App's Functions on Modal; a local App has no Functions, so they are kept for fidelity only."""
        if name is not None and not isinstance(name, str):
            raise InvalidError(f"Invalid value for `name`: must be a str or None, got {type(name).__name__}")
        self._name = name
        self._app_id: Optional[str] = None

    @property
    def app_id(self) -> Optional[str]:
        return self._app_id

    @property
    def name(self) -> Optional[str]:
        return self._name

    @classmethod
    def _from_record(cls, record: dict) -> "App":
        app = cls(record.get("name"))
        app._app_id = record["app_id"]
        return app

    @synchronized_static
    async def lookup(
        name: str, *, client: Any = None, environment_name: Optional[str] = None, create_if_missing: bool = False
    ) -> "App":
        """Find a deployed App by name (or `ap-` id), creating it if asked to."""
        if not isinstance(name, str):
            raise InvalidError(f"App name must be a string, got {type(name).__name__}")
        flag(create_if_missing, "create_if_missing")
        if name.startswith("ap-"):
            if create_if_missing:
                raise InvalidError("App.lookup() cannot create an App from an App ID; pass a name instead.")
            record = apps.find_app_by_id(name)
        else:
            # A file name under apps/: not a hidden one.
            record = apps.read_app(object_name(name, "App", leading_dot=False))
            if record is None and create_if_missing:
                record = apps.create_app(name)
        if record is None:
            raise NotFoundError(f"Could not find App with name {name!r}; use create_if_missing=True to create it.")
        return App._from_record(record)

    @context
    def run(self, *, name: Optional[str] = None, client: Any = None, detach: bool = False, interactive: bool = False,
            environment_name: Optional[str] = None) -> Iterator["App"]:
        """An ephemeral App: it has an id for the duration of the block. The options are Modal's; they
        concern its service (client, environments, detached and interactive runs), not a local App."""
        self._app_id = files.new_id("ap-")
        try:
            yield self
        finally:
            self._app_id = None

    def __repr__(self) -> str:
        return f"App({self._name!r}, app_id={self._app_id!r})"
