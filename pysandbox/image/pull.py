"""Image.from_registry: an OCI/Docker image pulled by the distribution API and
flattened into one layer (its layers unpacked in order, whiteouts applied).

Cached by reference, as Modal does: a tag is pulled once; `pysandbox image rm`
the image to pull the tag again. The image config's Env, WorkingDir,
Entrypoint and Cmd become the layer's runtime config (PATH falls back to
the usual default when the config has none). Under enable_output() each
layer's download shows its bytes as they arrive.
"""

from __future__ import annotations

import os
import time
from typing import Optional, Tuple

import attrs

from .. import output
from ..exception import InvalidError
from ..secret import Secret
from . import distribution, reference


@attrs.frozen
class FromRegistry:
    ref: reference.Reference
    credentials: Optional[Tuple[str, str]] = attrs.field(default=None, eq=False, repr=False)
    files = True
    mounted = False
    existing = None

    def definition(self) -> dict:
        return {"kind": "registry", "ref": str(self.ref)}

    def describe(self) -> str:
        return f"from_registry({self.ref})"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        client = distribution.Client(self.ref, self.credentials)
        layers, config = client.manifest()  # every descriptor and size bound checked before any download
        runtime = distribution.runtime_config(config)
        blobs = ctx.temp / "blobs"
        blobs.mkdir(mode=0o755)
        paths = []
        for number, layer in enumerate(layers, 1):
            path = blobs / layer.digest.split(":", 1)[1]
            if not path.exists():  # a layer may appear twice (it is then applied twice)
                what = f"layer {number}/{len(layers)} {layer.digest[:19]}"
                ctx.log(f"pulling {what} ({_size(layer.size)})")
                client.download(layer, path, _Progress(ctx.log, what, layer.size) if output.enabled() else None)
                os.chmod(path, 0o644)
            paths.append(path)
        if paths:
            ctx.unpack(paths)
        for path in set(paths):
            path.unlink()
        blobs.rmdir()
        ctx.config.update(runtime)


class _Progress:
    """Per-layer byte progress for enable_output(): a line at most every PERIOD_S seconds, and at the end."""

    PERIOD_S = 0.5

    def __init__(self, log, what: str, total: int) -> None:
        self.log, self.what, self.total, self.shown = log, what, total, 0.0

    def __call__(self, received: int) -> None:
        now = time.monotonic()
        if received == self.total or now - self.shown >= self.PERIOD_S:
            self.shown = now
            self.log(f"{self.what}: {_size(received)} / {_size(self.total)}")


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count} B"


def credentials_of(secret) -> Optional[Tuple[str, str]]:
    if secret is None:
        return None
    if not isinstance(secret, Secret):
        raise InvalidError(f"from_registry(secret=...) takes a pysandbox.Secret, got {type(secret).__name__}")
    env = secret.env()
    if "REGISTRY_USERNAME" not in env or "REGISTRY_PASSWORD" not in env:
        raise InvalidError("from_registry(secret=...) needs REGISTRY_USERNAME and REGISTRY_PASSWORD "
                           "(AWS ECR and GCP credentials are not supported by pysandbox).")
    return env["REGISTRY_USERNAME"], env["REGISTRY_PASSWORD"]
