"""Images: recipes (recipe.py), their steps (steps.py, local.py, pull.py),
the layer store (store.py), building (build.py), the Debian base (debian.py),
Dockerfiles (dockerfile.py), registries (reference.py, distribution.py,
_unpack.py), snapshots of running sandboxes (snapshot.py), host Pythons for images
(hostpython.py) and the `pysandbox
image` command (cli.py). What a sandbox started from an image gets is a
RootFS (pysandbox/_core/spec.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Tuple

import attrs

from .._lazy import LazyModule
from ..exception import InvalidError
from .local import AUTO_DOCKERIGNORE
from .recipe import Image

if TYPE_CHECKING:
    from . import steps
else:
    steps = LazyModule(f"{__package__}.steps")  # a build's, imported when a sandbox first mounts an image

__all__ = ["AUTO_DOCKERIGNORE", "Image", "apply", "check_mountable", "mountable_layers"]


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


def mountable_layers(image: Any) -> Tuple[str, ...]:
    """The layer directories (bottom first) of an image check_mountable() let through."""
    return image._resolve().lowers


def check_mountable(image: Any, method: str) -> None:
    """Refuse, before any work, an image Modal does not let `method` mount: it takes one with an id
    (built, from_id, a snapshot) or from_scratch(), never one with local files still to add."""
    if not isinstance(image, Image):
        raise TypeError(f"{method}(image=...) expects an Image object, got {image!r}")
    if any(step.mounted for step in image._steps):
        raise InvalidError(
            f"{method}() only supports pre-built images. When using `add_local*` methods, specify `copy=True` "
            f"and call `.build()` before passing the image to `mount_image()`:\n\nE.g.\n"
            'img = modal.Image.debian_slim().add_local_file("foo", "/foo", copy=True).build()\n'
            f"{method}(path, img)")
    if image.object_id is None and not all(isinstance(step, steps.Scratch) for step in image._steps):
        raise InvalidError(
            f"{method}() currently only supports Images that are either:\n"
            "- prebuilt using `image.build()`\n"
            "- referenced by id, e.g. `Image.from_id()`\n"
            "- filesystem/directory snapshots e.g. created by `.snapshot_directory()` or `.snapshot_filesystem()`\n")
