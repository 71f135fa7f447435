"""The image steps only Dockerfiles make (image/dockerfile.py parses, recipe.py replays):
`COPY <<EOF` files, ADD of local archives, `COPY --from` a stage or an image, and ENV values
that name the base image's variables."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shlex
import shutil
from pathlib import Path
from typing import Tuple

import attrs

from .._core.spec import BASE_ENV, Bind
from .._state.files import give_to_sandbox_owner
from . import build
from .dockerfile import expand
from .local import resolve

COPY_MOUNT = "/__pysandbox/copy"


def _lowers(ctx):
    return [] if ctx.parent is None else [Path(p) for p in ctx.parent.lowers]


@attrs.frozen
class WriteFile:
    """`COPY <<EOF dest`: a file holding a heredoc's text (0644, as docker makes it)."""

    dest: str
    text: str
    files = True
    mounted = False
    existing = None

    def definition(self) -> dict:
        return {"kind": "write_file", "dest": self.dest, "text": self.text}

    def describe(self) -> str:
        return f"COPY <<EOF {self.dest}"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        target = resolve(_lowers(ctx), ctx.rootfs, self.dest, parent_only=True)
        target.write_text(self.text)
        os.chmod(target, 0o644)
        give_to_sandbox_owner(target)


@attrs.frozen
class AddArchive:
    """`ADD archive.tar.gz dest`: the local archive extracted into dest, by the registry layers'
    unpacker (image/_unpack.py in a sandbox): its bounds, and no member lands outside dest."""

    local: str
    dest: str
    files = True
    mounted = False
    existing = None

    def definition(self) -> dict:
        digest = hashlib.sha256()
        with open(self.local, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return {"kind": "add_archive", "dest": self.dest, "sha256": digest.hexdigest()}

    def describe(self) -> str:
        return f"ADD {self.local} {self.dest}"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        target = resolve(_lowers(ctx), ctx.rootfs, self.dest)
        archives = ctx.temp / "archive"
        archives.mkdir(mode=0o755)
        copy = archives / "layer"
        shutil.copyfile(self.local, copy)
        os.chmod(copy, 0o644)
        try:
            ctx.unpack([copy], target)
        finally:
            shutil.rmtree(archives)


@attrs.frozen
class CopyFrom:
    """`COPY --from=stage|image sources dest`: the sources as the stage's image shows them,
    copied by `cp -a` in a sandbox on that image (so it needs /bin/sh and cp) into this layer.
    The destination is resolved through this image's symlinks first (local.resolve)."""

    source: Tuple = attrs.field(eq=False, repr=False)  # the stage's steps
    paths: Tuple[str, ...]
    dest: str
    files = True
    mounted = False
    existing = None

    def definition(self) -> dict:
        return {"kind": "copy_from", "stage": build.layer_ids(self.source)[-1], "paths": list(self.paths),
                "dest": self.dest}

    def describe(self) -> str:
        return f"COPY --from={self.source[0].describe()} {' '.join(self.paths)} {self.dest}"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        stage = build.resolve(self.source, build.build_description(self.source))  # only now: only stages needed
        into_dir = self.dest.endswith("/") or len(self.paths) > 1 or any(map(_is_glob, self.paths))
        target = resolve(_lowers(ctx), ctx.rootfs, self.dest, parent_only=not into_dir)
        target = target if into_dir else target.parent  # the directory the copy lands in: bound for cp
        if into_dir:  # each source into dest/ (a directory's contents, as docker copies it)
            script = "".join(f'for s in {_shell_path(p)}; do if [ -d "$s" ]; then cp -a "$s"/. {COPY_MOUNT}/; '
                             f'else cp -a "$s" {COPY_MOUNT}/; fi; done\n' for p in self.paths)
        else:
            name = shlex.quote(f"{COPY_MOUNT}/{posixpath.basename(self.dest.rstrip('/'))}")
            source = _shell_path(self.paths[0])
            script = (f'if [ -d {source} ]; then mkdir -p {name} && cp -a {source}/. {name}/; '
                      f'else cp -a {source} {name}; fi\n')
        ctx.in_sandbox(("/bin/sh", "-c", "set -e\n" + script), self.describe(), env=dict(BASE_ENV), rootfs=stage,
                       workdir="/", volumes=(Bind(str(target), COPY_MOUNT),), network="none")


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _shell_path(path: str) -> str:
    """`path` for the shell: quoted, its glob characters left for the shell to expand."""
    absolute = path if path.startswith("/") else "/" + path
    return "".join(c if c in "*?[]" else shlex.quote(c) if not c.isalnum() and c not in "/._-" else c
                   for c in absolute)


@attrs.frozen
class LateEnv:
    """A Dockerfile ENV whose values name variables only the image below knows (`PATH=/app:$PATH`):
    expanded against that image's config when the layer's config is made."""

    value: Tuple[Tuple[str, str], ...]
    files = False
    mounted = False
    existing = None

    def definition(self) -> dict:
        return {"kind": "env_late", "value": dict(self.value)}

    def describe(self) -> str:
        return "ENV " + " ".join(f"{k}={v}" for k, v in self.value)

    def configure(self, cfg: dict) -> dict:
        known = {**BASE_ENV, **cfg.get("env", {})}
        return {**cfg, "env": {**cfg.get("env", {}), **{k: expand(v, known) for k, v in self.value}}}

    def build(self, ctx) -> None:
        pass
