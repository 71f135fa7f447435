"""Images: recipes (recipe.py), their steps (steps.py), the layer store
(store.py), building (build.py), the Debian base (debian.py) and what a
sandbox started from an image gets (rootfs.py)."""

from __future__ import annotations

from typing import Any

import attrs

from ..exception import InvalidError
from .recipe import Image

__all__ = ["Image", "apply"]


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
