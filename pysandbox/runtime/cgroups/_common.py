"""What the cgroup package and its per-version modules (v1.py, v2.py) share: the host's
cgroup mounts and usable parents, and reading and writing cgroup files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, FrozenSet, Optional, Union

import attrs

from ..._state.files import write_all
from ...exception import InvalidError


@attrs.frozen
class Mount:
    path: str
    version: int  # 1 or 2
    controllers: FrozenSet[str]  # v1: the hierarchy's controllers; v2: empty (read cgroup.controllers)


@attrs.frozen
class Host:
    """Where this process can put sandbox cgroups: `parents` maps each usable
    controller to the directory the per-sandbox cgroups go under. `problem`
    says why a controller is missing (empty when all are there)."""

    version: int  # 0: no cgroup usable
    parents: Dict[str, str]
    problem: str = ""

    def has(self, controller: str) -> bool:
        return controller in self.parents


def write(path: Union[str, Path], value: str) -> None:
    # Plain os calls: a text file object costs more to set up (its codec) than the write itself.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            write_all(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise InvalidError(f"cannot write {value!r} to {path}: {exc.strerror}") from None


def read_in(dirs: Dict[str, str], controller: str, name: str, key: Optional[str] = None) -> Optional[int]:
    """A number from `name` in the controller's directory; None without that controller."""
    return read_number(os.path.join(dirs[controller], name), key) if controller in dirs else None


def read_number(path: str, key: Optional[str] = None) -> Optional[int]:
    """A cgroup file's single number, or the number on its `key` line; None if absent."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    if key is None:
        value = text.strip()
        return None if value == "max" else int(value)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None
