"""The steps of an image recipe. Each is one layer: its definition (hashed into
the layer id), what it does to the runtime config, and how it is built (Step)."""

from __future__ import annotations

import shlex
from typing import ClassVar, Dict, Optional, Protocol, Tuple

import attrs

from . import debian, hostpython

BUILDER_VERSION = "2026.11"  # part of every base's definition: bump to rebuild all images


class Step(Protocol):
    """What image/build.py asks of every step (these here, pull.FromRegistry, local.AddLocal)."""

    files: ClassVar[bool]  # it writes files (a lower layer of the image); else only runtime config
    mounted: bool  # local files bound in at run time, not copied: no step with files may follow
    existing: Optional[str]  # a layer built before (Image.from_id): never built, its id is its own

    def definition(self) -> dict: ...  # hashed, with the parent's id, into the layer id

    def describe(self) -> str: ...

    def configure(self, cfg: dict) -> dict: ...  # the runtime config (env, workdir, cmd) after it

    def build(self, ctx) -> None: ...


@attrs.frozen
class DebianSlim:
    """Debian's minimal root with its own Python and pip (debian.py); other series are AddPython on top."""

    suite: str
    files = True
    mounted = False
    existing = None

    def definition(self) -> dict:
        return {"kind": "debian_slim", "suite": self.suite, "python": debian.SUITE_PYTHON.get(self.suite),
                "packages": list(debian.PACKAGES), "builder": BUILDER_VERSION}

    def describe(self) -> str:
        return f"debian_slim({self.suite}, python {debian.SUITE_PYTHON.get(self.suite, 'of the suite')})"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        debian.bootstrap(self.suite, ctx)


@attrs.frozen
class AddPython:
    """A Python series copied from the host into /usr/local (hostpython.py), as Modal's add_python."""

    series: object  # validated when the image is built, as Modal does
    argument: str = attrs.field(default="add_python", eq=False)  # what the caller passed it as
    files = True
    mounted = False
    existing = None

    def definition(self) -> dict:
        return {"kind": "add_python", "python": hostpython.check_series(self.series, self.argument),
                "builder": BUILDER_VERSION}

    def describe(self) -> str:
        return f"add_python({self.series})"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def preflight(self) -> None:
        hostpython.find(self.series)  # no Python of that series on the host: say so before building anything

    def build(self, ctx) -> None:
        hostpython.add_python(self.series, ctx)


@attrs.frozen
class Scratch:
    files = False
    mounted = False
    existing = None

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
    files = True
    mounted = False
    existing = None

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
    files = False
    mounted = False
    existing = None

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
    files = True
    mounted = False

    @property
    def existing(self) -> str:
        return self.layer

    def definition(self) -> dict:
        return {"kind": "image", "layer": self.layer}

    def describe(self) -> str:
        return f"from_id(im-{self.layer})"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        raise AssertionError("an existing layer is never built")
