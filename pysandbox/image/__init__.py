"""Images: recipes (recipe.py), their steps (steps.py, local.py, pull.py),
the layer store (store.py), building (build.py), the Debian base (debian.py),
Dockerfiles (dockerfile.py), registries (reference.py, distribution.py,
_unpack.py), snapshots of running sandboxes (snapshot.py), host Pythons for images
(hostpython.py) and the `pysandbox
image` command (cli.py). What a sandbox started from an image gets is a
RootFS (pysandbox/_core/spec.py)."""

from __future__ import annotations

from typing import Any

import attrs

from ..exception import InvalidError
from .dockerfile import AUTO_DOCKERIGNORE
from .recipe import Image

__all__ = ["AUTO_DOCKERIGNORE", "Image", "apply"]


def apply(spec, image: Any):
    """`spec` for a sandbox started from `image` (built now if needed); None keeps the host image."""
    if image is None:
        return spec
    if not isinstance(image, Image):
        raise InvalidError(f"image must be a pysandbox.Image, got {type(image).__name__}")
    if spec.resources.ephemeral_disk is not None:  # a sized tmpfs root cannot carry the image's overlay
        raise InvalidError("ephemeral_disk= works with the host image only for now; drop it or image=.")
    rootfs = image._resolve()
    return attrs.evolve(spec, rootfs=rootfs, entrypoint=rootfs.command(spec.entrypoint),
                        workdir=spec.workdir or rootfs.workdir)
