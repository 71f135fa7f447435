"""The layer store: content-addressed layer directories under the state dir.

    images/layers/<id>/{meta.json, rootfs/}   published layers (never modified)
    images/tmp/<id>.<random>/{rootfs/, work/} layers being built
    images/locks/<id>.lock                    flock'ed while <id> is being built
    images/refs/<image id>.json               images a user built or used
    images/names/<name>/<tag>.json            published names (Image.publish, Image.from_name)

A layer id is the digest of its parent's id and its step's definition (with
the content digest of any local files), so an unchanged recipe maps to the
same ids and a built one resolves with one file read. A layer appears only by
the rename of a complete temporary directory; a crash leaves a temporary
directory that `prune` (or the next build of that layer) removes. Every file
of a layer belongs to the sandbox owner uid (settings.sandbox_owner), so
sandbox root owns its image, as rootless podman's single-uid mode does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional

from .. import _beneath, settings
from .._core import mounts
from .._state import files, records
from .._validate import object_name
from ..exception import InvalidError, NotFoundError

ID_LENGTH = 32
IMAGE_PREFIX = "im-"
RETIRED = "retired"


def root() -> Path:
    return settings.state_dir() / "images"


def layers_dir() -> Path:
    return root() / "layers"


def layer_dir(layer_id: str) -> Path:
    return layers_dir() / layer_id


def ensure_dirs() -> None:
    # Private, as all of the state directory (_state/files.private_state_dir); the sandbox
    # identity reaches layers through the supervisor's staged binds of `layers` and `tmp`,
    # which it must traverse (0711), never list.
    for name in ("layers", "tmp", "locks", "refs"):
        files.ensure_dir(root() / name, 0o711 if name in ("layers", "tmp") else 0o700)


def layer_id(parent: Optional[str], definition: dict) -> str:
    text = json.dumps({"parent": parent, "step": definition}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def image_id(top_layer: str) -> str:
    return IMAGE_PREFIX + top_layer


def layer_of(image_id_: str) -> str:
    if not (isinstance(image_id_, str) and image_id_.startswith(IMAGE_PREFIX)
            and len(image_id_) == len(IMAGE_PREFIX) + ID_LENGTH):
        raise NotFoundError(f"Invalid image id {image_id_!r}: expected 'im-' followed by {ID_LENGTH} hex digits.")
    return image_id_[len(IMAGE_PREFIX):]


def read_meta(layer: str) -> Optional[dict]:
    """The layer's metadata, or None if it is not built."""
    path = layer_dir(layer) / "meta.json"
    try:
        with open(path, "rb") as f:
            meta = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NotFoundError(f"Layer {layer} is corrupt: {path} ({exc}); remove it with "
                            "`pysandbox image prune --all`.") from None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(key), list) for key in ("chain", "lowers")) \
            or not isinstance(meta.get("config"), dict) or meta.get("id") != layer:
        raise NotFoundError(f"Layer {layer} is corrupt: {path} lacks its id, chain, lowers or config; remove it "
                            "with `pysandbox image prune --all`.")
    return meta


@contextlib.contextmanager
def building(layer: str) -> Iterator[None]:
    """Held while `layer` is built: a second builder waits here, then finds it published."""
    ensure_dirs()
    fd = os.open(root() / "locks" / f"{layer}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def new_temp(layer: str) -> Path:
    """A fresh build directory for `layer`, with `rootfs` and `work` owned by the sandbox owner."""
    temp = root() / "tmp" / f"{layer}.{secrets.token_hex(4)}"
    try:
        temp.mkdir(mode=0o711)  # staged for a root caller's build sandbox, which must traverse it
        for name in ("rootfs", "work"):
            (temp / name).mkdir(mode=0o755)
            files.give_to_sandbox_owner(temp / name)
    except OSError as exc:
        with contextlib.suppress(OSError):
            files.remove_tree(temp)  # a full disk leaves no half-made build directory
        raise files.write_error(temp, exc) from None
    return temp


def publish(temp: Path, layer: str, meta: dict) -> None:
    """Turn a finished build directory into the layer, by one rename."""
    files.remove_tree(temp / "work")
    files.remove_tree(temp / "rootfs" / "__pysandbox")  # bwrap's mount point for init, not content
    meta = {**meta, "id": layer, "size": disk_usage(temp / "rootfs"), "created_at": time.time()}
    files.write_json_atomic(temp / "meta.json", meta)
    if layer_dir(layer).exists():  # force_build: the old one retires; sandboxes on it keep their files
        os.rename(layer_dir(layer), root() / "tmp" / f"{layer}.{RETIRED}-{secrets.token_hex(4)}")
    os.rename(temp, layer_dir(layer))


def disk_usage(path: Path) -> int:
    """Bytes the tree holds (a layer a sandbox wrote: any depth, no symlink followed). A rootless
    caller cannot read directories that other sandbox users keep private: it counts the rest."""
    root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return sum(info.st_blocks * 512 for _, info, _, _ in _beneath.walk(root, skip_unreadable=True))
    finally:
        os.close(root)


def remember(image: str, description: str) -> None:
    """Record that an image was used, so prune keeps its layers."""
    ref = root() / "refs" / f"{image}.json"
    if not ref.exists():
        files.write_json_atomic(ref, {"image_id": image, "recipe": description, "created_at": time.time()},
                                   durable=False)


_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")


def _name_path(name: Any) -> Path:
    """Where `name` (Modal's "name[:tag]", tag "latest" by default) is kept."""
    if not isinstance(name, str):
        raise InvalidError(f"An image name must be a str such as 'my-image:v1', got {type(name).__name__}")
    base, _, tag = name.partition(":")
    tag = tag or "latest"
    if not _TAG.match(tag):
        raise InvalidError(f"Invalid image tag {tag!r} in {name!r}: letters, digits, '_', '.' and '-' (1 to 128).")
    return root() / "names" / object_name(base, "Image", leading_dot=False) / f"{tag}.json"


def publish_name(name: str, image: str) -> None:
    """`name` names `image` from now on (Image.publish); publishing it again moves the name."""
    path = _name_path(name)
    files.ensure_dir(path.parent)
    remember(image, f"published as {name}")
    files.write_json_atomic(path, {"image_id": image, "published_at": time.time()})


def named(name: str) -> str:
    """The image `name` names (Image.from_name)."""
    path = _name_path(name)
    try:
        image = files.read_json(path, "image name").get("image_id")
    except FileNotFoundError:
        raise NotFoundError(f"Image {name!r} not found: publish one under that name first "
                            "(image.build(), then image.publish(name)).") from None
    layer_of(image)  # a corrupt record names no image: NotFoundError, not a path
    return image


def refs() -> List[dict]:
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir(root() / "refs")):
            if entry.endswith(".json"):
                with contextlib.suppress(OSError, ValueError):
                    found.append(files.read_json(root() / "refs" / entry, "image reference"))
    return found


def forget(image: str) -> None:
    layer_of(image)
    try:
        os.unlink(root() / "refs" / f"{image}.json")
    except FileNotFoundError:
        raise NotFoundError(f"Image {image} not found") from None


def all_layers() -> List[str]:
    with contextlib.suppress(FileNotFoundError):
        return sorted(os.listdir(layers_dir()))
    return []


def layers_in_use() -> set:
    """Layers under running sandboxes (their image's, and those of images mounted in them):
    never removed, whatever was asked."""
    used = set()
    for record in records.running_records(include_terminating=True):
        used.update(mounts.mounted_layers(record.sandbox_id))
        if record.image_id.startswith(IMAGE_PREFIX):
            meta = read_meta(layer_of(record.image_id))
            used.update(meta["chain"] if meta else ())
    return used


def stale_temps() -> List[Path]:
    """Build directories nobody is building (their layer's lock is free), and retired
    layers no running sandbox may still stand on."""
    stale = []
    entries = os.listdir(root() / "tmp") if (root() / "tmp").is_dir() else []
    in_use = layers_in_use() if any(f".{RETIRED}-" in e for e in entries) else set()
    with contextlib.suppress(FileNotFoundError):
        for entry in entries:
            if f".{RETIRED}-" in entry and entry.split(".")[0] in in_use:
                continue
            fd = os.open(root() / "locks" / f"{entry.split('.')[0]}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                stale.append(root() / "tmp" / entry)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
    return stale


def remove_stale_temps() -> int:
    """Remove what crashed or failed builds left; how many directories."""
    stale = stale_temps()
    for temp in stale:
        files.remove_tree(temp)
    return len(stale)


def prune(everything: bool = False) -> List[str]:
    """Remove stale build directories and layers no remembered image uses; the layer ids removed."""
    remove_stale_temps()
    # Layers under a running sandbox stay, whatever was asked: removing them would pull files from under it.
    keep = layers_in_use()
    for image in [] if everything else [ref["image_id"] for ref in refs()]:
        meta = read_meta(layer_of(image))
        if meta is not None:
            keep.update(meta["chain"])
    removed = []
    for layer in all_layers():
        if layer not in keep:
            # Renamed away first, so a reader never sees a half-deleted layer.
            doomed = root() / "tmp" / f"{layer}.removed-{secrets.token_hex(4)}"
            os.rename(layer_dir(layer), doomed)
            files.remove_tree(doomed)
            removed.append(layer)
    if everything:
        for ref in refs():
            if layer_of(ref["image_id"]) not in keep:
                forget(ref["image_id"])
    return removed
