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
from typing import Callable, List, Optional, Sequence, Tuple, Union

import attrs

from .. import config
from ..exception import InvalidError

Ignore = Union[Sequence[str], Callable[[Path], bool]]
MAX_SYMLINKS = 40


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
    base = False
    files = True

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
                _own(dest)
            else:
                _copy_file(source, dest)


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        os.lchown(path, *config.sandbox_owner())


def _make_dir(path: Path, mode: int) -> None:
    if not path.is_dir():
        path.mkdir(mode=mode)
        os.chmod(path, mode)
        _own(path)


def _copy_file(source: Path, dest: Path) -> None:
    if dest.is_dir() and not dest.is_symlink():
        raise InvalidError(f"Cannot copy the file {source} over the directory {dest.name} of the image.")
    shutil.copyfile(source, dest, follow_symlinks=True)
    os.chmod(dest, stat.S_IMODE(os.stat(source).st_mode) & 0o777)
    _own(dest)


def resolve(lowers: List[Path], upper: Path, remote: str, parent_only: bool = False) -> Path:
    """Where `remote` lands in the layer `upper`, following the image's symlinks; directories
    on the way are created in `upper` (with the mode the image gives them)."""
    parts = [p for p in PurePosixPath(remote).parts[1:]]
    last = parts.pop() if parent_only else None
    current = PurePosixPath("/")
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            current = current.parent
            continue
        candidate = current / name
        found = _lookup(lowers, upper, candidate)
        if found is not None and stat.S_ISLNK(found.st_mode):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise InvalidError(f"Too many symlinks resolving {remote} in the image.")
            target = PurePosixPath(_readlink(lowers, upper, candidate))
            parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
            current = PurePosixPath("/") if target.is_absolute() else current
            continue
        if found is not None and not stat.S_ISDIR(found.st_mode):
            raise InvalidError(f"Cannot add files under {candidate}: it is a file in the image.")
        _make_dir(upper / candidate.relative_to("/"), stat.S_IMODE(found.st_mode) if found else 0o755)
        current = candidate
    dest = upper / current.relative_to("/")
    return dest / last if last is not None else dest


def _lookup(lowers: List[Path], upper: Path, path: PurePosixPath) -> Optional[os.stat_result]:
    for layer in [upper, *reversed(lowers)]:
        try:
            info = os.lstat(layer / path.relative_to("/"))
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            return None  # an overlay whiteout: deleted in this layer
        return info
    return None


def _readlink(lowers: List[Path], upper: Path, path: PurePosixPath) -> str:
    for layer in [upper, *reversed(lowers)]:
        if os.path.islink(layer / path.relative_to("/")):
            return os.readlink(layer / path.relative_to("/"))
    raise InvalidError(f"{path} vanished while resolving it")
