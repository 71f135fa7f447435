"""The steps of an image recipe. Each is one layer: its definition (hashed into
the layer id), what it does to the runtime config, and how it is built."""

from __future__ import annotations

import shlex
from typing import Dict, Optional, Tuple

import attrs

from . import debian

BUILDER_VERSION = "2026.11"  # part of every base's definition: bump to rebuild all images


@attrs.frozen
class DebianSlim:
    python_version: Optional[str]
    base = True
    files = True

    def definition(self) -> dict:
        version = self.python_version or debian.local_python_version()
        return {"kind": "debian_slim", "python": version, "packages": list(debian.PACKAGES), "builder": BUILDER_VERSION}

    def describe(self) -> str:
        return f"debian_slim(python_version={self.python_version or debian.local_python_version()})"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        debian.bootstrap(self.python_version, ctx)


@attrs.frozen
class Scratch:
    base = True
    files = False

    def definition(self) -> dict:
        return {"kind": "scratch"}

    def describe(self) -> str:
        return "from_scratch()"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        pass


@attrs.frozen
class Run:
    """A shell command run as root in a build sandbox on top of the layers below."""

    command: str
    env: Tuple[Tuple[str, str], ...] = ()
    secret_env: Tuple[Tuple[str, str], ...] = attrs.field(default=(), eq=False, repr=False)
    base = False
    files = True

    def definition(self) -> dict:
        # Secret values never reach the digest (or the metadata), their names do.
        return {"kind": "run", "command": self.command, "env": dict(self.env),
                "secrets": sorted(k for k, _ in self.secret_env)}

    def describe(self) -> str:
        return f"RUN {self.command}"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        ctx.run(self.command, {**dict(self.secret_env), **dict(self.env)})


@attrs.frozen
class Config:
    """ENV, WORKDIR, ENTRYPOINT or CMD: runtime configuration, no files."""

    key: str  # env | workdir | entrypoint | cmd
    value: object = attrs.field(converter=lambda v: tuple(v) if isinstance(v, list) else v)
    base = False
    files = False

    def definition(self) -> dict:
        value = dict(self.value) if self.key == "env" else self.value
        return {"kind": self.key, "value": value}

    def describe(self) -> str:
        if self.key == "env":
            return "ENV " + " ".join(f"{k}={shlex.quote(v)}" for k, v in self.value)
        return f"{self.key.upper()} {shlex.join(self.value) if isinstance(self.value, tuple) else self.value}"

    def configure(self, cfg: dict) -> dict:
        if self.key == "env":
            return {**cfg, "env": {**cfg.get("env", {}), **dict(self.value)}}
        return {**cfg, self.key: list(self.value) if isinstance(self.value, tuple) else self.value}

    def build(self, ctx) -> None:
        pass


def env_pairs(env: Optional[Dict[str, str]]) -> Tuple[Tuple[str, str], ...]:
    return tuple(sorted((env or {}).items()))


@attrs.frozen
class Existing:
    """A layer built before (Image.from_id): its id is the layer's, not a digest."""

    layer: str
    base = True
    files = True

    def definition(self) -> dict:
        return {"kind": "image", "layer": self.layer}

    def describe(self) -> str:
        return f"from_id(im-{self.layer})"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        raise AssertionError("an existing layer is never built")
