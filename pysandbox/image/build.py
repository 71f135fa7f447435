"""Turning a recipe into published layers, and a built image into a RootFS.

Resolving walks the recipe's layer ids (pure hashing) and reads the top
layer's metadata: a built image costs one file read and spawns nothing.
Missing layers are built in order, each under its own lock, into a temporary
directory that is published by rename only when the step succeeded.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import ssl
import stat
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import attrs

from .. import bounds, output, settings
from .._core import oneshot
from .._core.spec import BASE_ENV, Bind, RootFS, SandboxSpec
from .._state import files
from ..exception import ImageBuildError, InvalidError, NotFoundError
from . import _unpack, store
from .steps import Step

BUILD_TIMEOUT = 3600
OLDROOT = "/oldroot"
STAGED_LAYER_PATH = len("/run/pysandbox-stage/00/") + store.ID_LENGTH + len("/rootfs")
OVERLAY_OPTIONS_MAX = 4096 - 512  # a page, less upperdir, workdir and the flags
CA_MOUNT = "/__pysandbox/ca-certificates.crt"
CA_VARIABLES = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class StepFailed(ImageBuildError):
    """A build sandbox's command exited with `code`; `tail` holds the last lines of its output."""

    def __init__(self, message: str, code: int, tail: List[str]) -> None:
        super().__init__(message)
        self.code, self.tail = code, tail


def layer_ids(steps: Sequence[Step]) -> List[str]:
    ids, parent = [], None
    for step in steps:
        parent = step.existing or store.layer_id(parent, step.definition())
        ids.append(parent)
    return ids


def rootfs_of(meta: dict) -> RootFS:
    cfg = meta["config"]
    return RootFS(
        image_id=store.image_id(meta["id"]),
        lowers=tuple(str(store.layer_dir(layer) / "rootfs") for layer in meta["lowers"]),
        env={**BASE_ENV, **cfg.get("env", {})},
        workdir=cfg.get("workdir"),
        entrypoint=tuple(cfg.get("entrypoint") or ()),
        cmd=tuple(cfg.get("cmd") or ()),
    )


def resolve(steps: Sequence, description: str, force_from: Optional[int] = None) -> RootFS:
    """The built image of `steps`, building whatever is missing (and step `force_from` onwards)."""
    ids = layer_ids(steps)
    meta = store.read_meta(ids[-1]) if force_from is None else None
    if meta is None:
        check_order(steps)
        meta = _build(steps, ids, force_from)
    store.remember(store.image_id(ids[-1]), description)
    rootfs = rootfs_of(meta)
    check_mountable(rootfs)
    for lower in rootfs.lowers:
        if not os.path.isdir(lower):
            layer = os.path.basename(os.path.dirname(lower))
            raise NotFoundError(f"Image {rootfs.image_id} is damaged: layer {layer} has no files; remove the "
                                "damaged cache with `pysandbox image prune --all` and build again.")
    return rootfs


def check_mountable(rootfs: RootFS) -> None:
    """Overlayfs takes its lower directories in one mount option string of at most a page;
    bwrap passes them as /oldroot/<path> (or a shorter staged path)."""
    length = sum(len(OLDROOT) + max(len(lower), STAGED_LAYER_PATH) + 1 for lower in rootfs.lowers)
    if length > OVERLAY_OPTIONS_MAX:
        raise InvalidError(
            f"Image {rootfs.image_id} has {len(rootfs.lowers)} layers with files, more than one overlay mount "
            "takes with this state directory. Merge steps: one run_commands() call with `&&`, "
            "one pip_install() with every package."
        )


def check_order(steps: Sequence[Step]) -> None:
    """Modal's rule: no build step after local files that are mounted rather than copied."""
    mounted = None
    for step in steps:
        if step.mounted:
            mounted = step
        elif mounted is not None and step.files:
            raise InvalidError(
                "An image tried to run a build step after using `image.add_local_*` to include local files. "
                "Run `image.add_local_*` commands last in your image build to avoid rebuilding images with "
                "every local file change, or pass `copy=True` to copy the files into a layer."
            )


def _build(steps: Sequence[Step], ids: List[str], force_from: Optional[int]) -> dict:
    for number, (step, layer) in enumerate(zip(steps, ids), 1):  # what a step needs from the host, before any work
        preflight = getattr(step, "preflight", None)  # only AddPython has one: its host Python
        if preflight is not None and ((force_from is not None and number > force_from) or not store.read_meta(layer)):
            preflight()
    progress = output.BuildProgress(store.image_id(ids[-1]), len(steps))
    parent: Optional[dict] = None
    for number, (step, layer) in enumerate(zip(steps, ids), 1):
        forced = force_from is not None and number > force_from and step.existing is None
        meta = None if forced else store.read_meta(layer)
        if meta is None:
            if step.existing is not None:
                raise NotFoundError(f"Image {store.image_id(layer)} not found")
            progress.step(number, step.describe())
            with store.building(layer):  # a concurrent builder of this layer finishes first
                meta = (None if forced else store.read_meta(layer)) or _build_layer(step, layer, parent, progress)
        else:
            progress.cached(number, step.describe())
        parent = meta
    progress.done()
    return parent


def _build_layer(step: Step, layer: str, parent: Optional[dict], progress) -> dict:
    store.ensure_dirs()
    temp = store.new_temp(layer)
    published = False
    try:
        context = BuildContext(temp, None if parent is None else rootfs_of(parent), progress.log)
        if context.parent is not None:
            check_mountable(context.parent)
        started = time.monotonic()
        try:
            step.build(context)
        except ImageBuildError as exc:
            exc.image_id = store.image_id(layer)
            raise
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            raise files.write_error(Path(exc.filename or temp), exc) from None  # a full disk, said plainly
        meta = {
            "parent": None if parent is None else parent["id"],
            "step": step.definition(),
            "description": step.describe(),
            "chain": ([] if parent is None else parent["chain"]) + [layer],
            "lowers": ([] if parent is None else parent["lowers"]) + ([layer] if step.files else []),
            "config": {**step.configure({} if parent is None else parent["config"]), **context.config},
            "build_seconds": round(time.monotonic() - started, 3),
        }
        store.publish(temp, layer, meta)
        published = True
        return store.read_meta(layer)
    finally:
        if not published:
            _remove_quietly(temp)


def _remove_quietly(path: Path) -> None:
    try:
        files.remove_tree(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)  # what is left is a stale temp dir that prune removes


def host_ca_bundle() -> Optional[str]:
    """The host's CA bundle: build steps trust what the host trusts, so builds work behind
    a TLS-intercepting proxy. Mounted, never copied: it is not part of any layer."""
    path = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    return path if os.path.isfile(path) and os.stat(path).st_mode & stat.S_IROTH else None


@attrs.define
class BuildContext:
    """What a step builds with: its layer's directory, build sandboxes, and the
    runtime config it found (a registry image's Env, Cmd, ...)."""

    temp: Path
    parent: Optional[RootFS]
    log: Callable[[str], None]
    config: dict = attrs.field(factory=dict)

    @property
    def rootfs(self) -> Path:
        return self.temp / "rootfs"

    def run(self, command: str, env: dict, on_line: Optional[Callable[[str], None]] = None) -> None:
        """`command` in /bin/sh in a build sandbox on the parent's layers, writing this layer;
        `on_line` also sees each line of its output."""
        if self.parent is None:
            raise InvalidError(f"Cannot run {command!r} on an empty image: start from a base image.")
        trust = host_ca_bundle()
        if trust is not None:
            env = {**{name: CA_MOUNT for name in CA_VARIABLES}, **env}
        rootfs = attrs.evolve(self.parent, upper=str(self.temp))
        volumes = () if trust is None else (Bind(trust, CA_MOUNT, True),)
        self.in_sandbox(("/bin/sh", "-c", "exec 2>&1\n" + command), command, env=env, rootfs=rootfs,
                        workdir=self.parent.workdir, volumes=volumes, on_line=on_line,
                        network="default")  # PyPI and the archive through slirp4netns, host loopback unreachable

    def unpack(self, blobs: Sequence[Path], target: Optional[Path] = None) -> None:
        """Registry layers (or a Dockerfile's ADD archive) into this layer's root (or `target`, a
        directory in it), by _unpack.py in a sandbox on the host image (no network): whatever a
        hostile tarball holds, it cannot write outside it, and what it unpacks to is bounded
        (bytes, entries, memory; bounds.py)."""
        script = str(Path(__file__).with_name("_unpack.py"))
        volumes = (Bind(str(target or self.rootfs), "/target"), Bind(str(blobs[0].parent), "/blobs", True),
                   Bind(script, "/__pysandbox/unpack.py", True))
        limits = {name: bounds.get(name) for name in _unpack.BOUNDS}
        argv = ("python3", "/__pysandbox/unpack.py", json.dumps(limits), "/target",
                *(f"/blobs/{b.name}" for b in blobs))
        try:
            self.in_sandbox(argv, "unpack layers", env={}, rootfs=None, workdir="/", volumes=volumes,
                            network="none")
        except StepFailed as exc:
            hit = [line.split(" ", 2) for line in exc.tail if line.startswith(_unpack.MARKER + " ")]
            if exc.code != _unpack.LIMIT_EXIT or not hit or len(hit[-1]) < 3 or hit[-1][1] not in limits:
                raise
            _, name, detail = hit[-1]
            raise ImageBuildError(f"Unpacking the image stopped: {detail}, over the bound {bounds.variable(name)}"
                                  f"={limits[name]}; raise it to pull this image.") from None

    def in_sandbox(self, argv, what: str, *, env: dict, rootfs: Optional[RootFS], workdir: Optional[str],
                   volumes: tuple, network: str, on_line: Optional[Callable[[str], None]] = None,
                   runner: Optional[str] = None, timeout: float = BUILD_TIMEOUT) -> None:
        """SandboxTimeoutError past `timeout` seconds."""
        spec = SandboxSpec((), env=env, workdir=workdir, timeout=timeout, network=network, runner=runner)
        log = self.log if on_line is None else (lambda line: (self.log(line), on_line(line)))
        outcome = oneshot.run(attrs.evolve(spec, rootfs=rootfs, volumes=volumes), argv, what, log)
        if outcome.code != 0:
            raise StepFailed(f"Image build step failed with exit code {outcome.code}: {what}\n"
                             + "\n".join(outcome.tail), outcome.code, outcome.tail)


def copy_runner() -> str:
    """The runner of a sandbox that copies a tree into a layer (image/snapshot.py, treestream.py):
    PYSANDBOX_RUNNER's, but bwrap for gvisor, whose gofer cannot make the whiteouts (character devices
    0/0) a snapshot's copy holds. The copy is pysandbox's own step on the host image."""
    chosen = settings.runner()
    return "bwrap" if chosen == "gvisor" else chosen


def build_description(steps: Sequence) -> str:
    return " | ".join(step.describe() for step in steps)
