"""add_local_file / add_local_dir: local files copied into a layer.

The files are read on the host (with the caller's rights) and written into the
layer directory, owned by the sandbox owner. The destination is resolved
through the layers below, following their symlinks (on Debian /bin is a
symlink to usr/bin), so a copied file never shadows a directory symlink of
the image. The layer id covers every file's path, mode and content digest:
an unchanged directory is not copied again, a changed one only re-copies it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import stat
from pathlib import Path, PurePosixPath
from typing import Callable, List, Sequence, Tuple, Union

import attrs

from .._overlay import LayerView
from .._state.files import give_to_sandbox_owner
from ..exception import InvalidError

Ignore = Union[Sequence[str], Callable[[Path], bool]]


class _AutoDockerIgnoreSentinel:
    """Modal's default `ignore`: the .dockerignore of the Dockerfile or of the context
    (image/dockerfile.py). Defined here, not there, so that Image's signatures need no Dockerfile parser."""

    def __repr__(self) -> str:
        return "modal._image.AUTO_DOCKERIGNORE"

    def __call__(self, _: Path) -> bool:
        raise NotImplementedError("AUTO_DOCKERIGNORE is a placeholder: it is never called")


AUTO_DOCKERIGNORE = _AutoDockerIgnoreSentinel()


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _ignored(rel: PurePosixPath, local: Path, ignore: Ignore) -> bool:
    if callable(ignore):
        return bool(ignore(local))
    names = [str(rel)] + [str(parent) for parent in rel.parents if str(parent) != "."]
    return any(fnmatch.fnmatch(name, pattern.strip("/")) for pattern in ignore for name in names)


def listing(local: Path, ignore: Ignore) -> List[Tuple[str, int, str]]:
    """(relative path, mode, content digest or link target) of every entry kept, sorted."""
    if local.is_file():
        return [("", os.stat(local).st_mode, _digest(str(local)))]
    entries = []
    for directory, dirs, files in os.walk(local):
        for name in sorted(dirs + files):
            path = Path(directory) / name
            rel = PurePosixPath(path.relative_to(local).as_posix())
            if _ignored(rel, path, ignore):
                if name in dirs:
                    dirs.remove(name)
                continue
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                entries.append((str(rel), info.st_mode, os.readlink(path)))
            elif stat.S_ISREG(info.st_mode):
                entries.append((str(rel), info.st_mode, _digest(str(path))))
            elif stat.S_ISDIR(info.st_mode):
                entries.append((str(rel), info.st_mode, ""))
    return sorted(entries)


@attrs.frozen
class AddLocal:
    local: str
    remote: str
    copy: bool
    ignore: Ignore = attrs.field(default=(), eq=False)
    files = True
    existing = None

    @property
    def mounted(self) -> bool:
        return not self.copy

    def definition(self) -> dict:
        local = Path(self.local)
        if not local.exists():
            raise InvalidError(f"Local path {self.local} does not exist (image.add_local_*).")
        return {"kind": "add_local", "remote": self.remote, "copy": self.copy,
                "entries": [list(e) for e in listing(local, self.ignore)]}

    def describe(self) -> str:
        return f"COPY {self.local} {self.remote}"

    def configure(self, cfg: dict) -> dict:
        return cfg

    def build(self, ctx) -> None:
        lowers = [] if ctx.parent is None else [Path(p) for p in ctx.parent.lowers]
        local = Path(self.local)
        if local.is_file():
            target = resolve(lowers, ctx.rootfs, self.remote, parent_only=True)
            _copy_file(local, target)
            return
        top = resolve(lowers, ctx.rootfs, self.remote)
        _make_dir(top, 0o755)
        for rel, mode, _ in self.definition()["entries"]:
            source, dest = local / rel, top / rel
            if stat.S_ISDIR(mode):
                _make_dir(dest, stat.S_IMODE(mode))
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(source), dest)
                give_to_sandbox_owner(dest)
            else:
                _copy_file(source, dest)


def _make_dir(path: Path, mode: int) -> None:
    if not path.is_dir():
        path.mkdir(mode=mode)
        os.chmod(path, mode)
        give_to_sandbox_owner(path)


def _copy_file(source: Path, dest: Path) -> None:
    if dest.is_dir() and not dest.is_symlink():
        raise InvalidError(f"Cannot copy the file {source} over the directory {dest.name} of the image.")
    shutil.copyfile(source, dest, follow_symlinks=True)
    os.chmod(dest, stat.S_IMODE(os.stat(source).st_mode) & 0o777)
    give_to_sandbox_owner(dest)


def resolve(lowers: List[Path], upper: Path, remote: str, parent_only: bool = False) -> Path:
    """Where `remote` lands in the layer `upper`, following the image's symlinks inside the image
    (_overlay.LayerView: never a host path); directories on the way are created in `upper`, with
    the mode the image gives them."""
    directory, _, last = remote.rstrip("/").rpartition("/") if parent_only else (remote, "", "")
    with LayerView([*map(str, lowers), str(upper)]) as view:
        parts = [part for part in view.resolve(directory).split("/") if part]
        for depth in range(1, len(parts) + 1):
            found = view.lookup(parts[:depth])
            if found is not None and not stat.S_ISDIR(found.mode):
                raise InvalidError(f"Cannot add files under /{'/'.join(parts[:depth])}: it is a file in the image.")
            _make_dir(upper.joinpath(*parts[:depth]), stat.S_IMODE(found.mode) if found else 0o755)
    dest = upper.joinpath(*parts)
    return dest / last if last else dest
