"""sb.snapshot_filesystem(): a running image sandbox's changes, published as a new layer;
sb.snapshot_directory(): one directory of any running sandbox, as an image of its own.

The sandbox's upper directory (written by sandbox code) is copied by `cp -a`
in a helper sandbox on the host image, never by a privileged host process, so
symlinks swapped in during the copy cannot make us read host files. Whiteouts
and opaque-directory xattrs are copied as they are, so deletions carry over.
The new image is the sandbox's image plus that layer. Under gVisor the upper is the
same, written by the host's overlayfs beneath runsc's gofer (whiteouts and opaque
directories included), and runsc's gofer writes through: a write, chmod or chown, and
a shared mapping's pages, are on the host when the call returns (tests/sandbox/test_gvisor.py
holds it), so nothing needs flushing first. The copying sandbox never runs under gVisor
(build.copy_runner).

A directory may live anywhere in the sandbox (its overlay, the host image's tmpfs root, a
mounted image), so snapshot_directory reads it from inside the sandbox's namespaces, one
name at a time beneath the directory's fd and never following a symlink (_core/mounts.py,
sandbox-mount --copy), and the copy becomes a layer with no parent. Under gVisor, whose namespaces
the host cannot join, init walks it the same way and streams the tree out (image/treestream.py).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator

from .._core import mounts
from .._core.initclient import InitClient
from .._core.spec import Bind
from .._state import paths
from ..exception import ConflictError, SandboxTimeoutError, TimeoutError, UnimplementedError
from ..runtime import gvisor
from . import build, store, treestream
from .recipe import Image


def snapshot_filesystem(sandbox_id: str, image_id: str, running: bool, timeout: float) -> Image:
    """The sandbox's filesystem now (the sandbox `sandbox_id`, started from `image_id`), as a new Image;
    TimeoutError if the copy takes more than `timeout` seconds (sandbox code chooses what it copies: a
    file it grows as fast as the copy reads it, millions of entries; red14: the copy ran an hour, the
    build bound, whatever the caller's timeout)."""
    if not image_id.startswith(store.IMAGE_PREFIX):
        raise UnimplementedError("snapshot_filesystem() needs a sandbox created from an Image; the host image "
                                 "cannot be snapshotted. Pass image=modal.Image.debian_slim() (or another).")
    directory = paths.SandboxDir.of(sandbox_id)
    parent = store.read_meta(store.layer_of(image_id))
    upper = directory.upper / "rootfs"
    if parent is None or not running or not upper.is_dir():
        raise ConflictError(f"Sandbox {sandbox_id} has finished (or its image was removed): nothing to snapshot.")
    layer = store.layer_id(parent["id"], {"kind": "snapshot", "sandbox": sandbox_id, "at": time.time()})
    with _new_layer(layer) as temp:
        context = build.BuildContext(temp, None, lambda line: None)
        volumes = (Bind(str(upper), "/src", True), Bind(str(temp / "rootfs"), "/dst"))
        try:
            context.in_sandbox(("cp", "-a", "/src/.", "/dst/"), "snapshot", env={}, rootfs=None, workdir="/",
                               volumes=volumes, network="none", runner=build.copy_runner(), timeout=timeout)
        except SandboxTimeoutError:
            raise TimeoutError(f"snapshot_filesystem() did not finish within {timeout}s.") from None
        store.publish(temp, layer, {
            "parent": parent["id"], "step": {"kind": "snapshot", "sandbox": sandbox_id},
            "description": f"snapshot of {sandbox_id}", "chain": parent["chain"] + [layer],
            "lowers": parent["lowers"] + [layer], "config": parent["config"],
        })
    return _remembered(layer, f"snapshot of {sandbox_id}")


async def snapshot_directory(client: InitClient, path: str, timeout: float) -> Image:
    """The directory `path` of the running sandbox `client` speaks to, as a new Image."""
    definition = {"kind": "directory snapshot", "sandbox": client.sandbox_id, "path": path}
    layer = store.layer_id(None, {**definition, "at": time.time()})
    with _new_layer(layer) as temp:
        if gvisor.runs(str(paths.SandboxDir.of(client.sandbox_id).path)):
            await treestream.copy_directory(client, path, temp, timeout)
        else:
            await mounts.copy_directory(client, path, temp / "rootfs", timeout)
        store.publish(temp, layer, {
            "parent": None, "step": definition, "description": f"snapshot of {path} in {client.sandbox_id}",
            "chain": [layer], "lowers": [layer], "config": {},
        })
    return _remembered(layer, f"snapshot of {path} in {client.sandbox_id}")


@contextlib.contextmanager
def _new_layer(layer: str) -> Iterator[Path]:
    """A temporary directory for `layer`, removed if the block fails before publishing it. The layer's
    lock is held meanwhile, as a build holds it: garbage collection (which a create starts in the
    background) removes a temporary directory whose lock is free as a crashed build's."""
    with store.building(layer):
        temp = store.new_temp(layer)
        try:
            yield temp
        except BaseException:
            build._remove_quietly(temp)
            raise


def _remembered(layer: str, description: str) -> Image:
    """The image whose top is `layer`, kept by prune."""
    store.remember(store.image_id(layer), description)
    return Image.from_id(store.image_id(layer))
