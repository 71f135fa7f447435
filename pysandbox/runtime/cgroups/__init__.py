"""Per-sandbox cgroups: find a writable hierarchy, make one cgroup per sandbox,
write its limits, read its stats, remove it.

One module per cgroup version (v1.py, v2.py), like psutil's per-OS modules;
this one parses what the kernel says about the host (/proc/self/mountinfo,
/proc/self/cgroup), picks the version (v1 wherever the memory controller is on
a v1 hierarchy, else v2), and does what both share; _common.py holds the types
and file helpers all three use.

A sandbox's cgroup is made here before its supervisor starts, and listed in
the sandbox directory's `cgroup.json`. The supervisor's runner child joins it
before dropping privileges and exec'ing the runner (so nothing of the sandbox ever
runs outside it), and the supervisor removes it at teardown. Whoever repairs
after a crashed supervisor (runtime/reconcile.py, gc) removes it from that list.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import signal
import time
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import attrs

from ..._state.files import write_json_atomic
from ..._state.paths import SandboxDir
from ...exception import ExecutionError, InvalidError
from ...resources import Resources, SandboxStats
from . import v1, v2
from ._common import Host, Mount, write

PARENT_NAME = "pysandbox"
CONTROLLERS = ("cpu", "memory", "pids")
OPTIONAL_FILES = ("memory.memsw.limit_in_bytes", "memory.swap.max")  # absent without swap accounting
_HOW_TO = ("Run as root, or on a cgroup v2 host inside a systemd-delegated subtree, e.g. "
           "`systemd-run --user --scope -p Delegate=yes python your_script.py`.")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def parse_mountinfo(text: str) -> List[Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2":
            mounts.append(Mount(_unescape(fields[4]), 2, frozenset()))
        elif tail[0] == "cgroup":
            options = set(tail[2].split(","))
            mounts.append(Mount(_unescape(fields[4]), 1, frozenset(options & {*CONTROLLERS, "cpuacct"})))
    return mounts


def parse_proc_cgroup(text: str) -> Dict[str, str]:
    """/proc/self/cgroup as {controller: path}; the v2 entry under ""."""
    own = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                own[controller] = parts[2]
    return own


def probe(proc: str = "/proc/self") -> Host:
    """Inspect the host (uncached; `host()` is the cached one)."""
    try:
        mounts = parse_mountinfo(Path(proc, "mountinfo").read_text())
        own = parse_proc_cgroup(Path(proc, "cgroup").read_text())
    except OSError as exc:
        return Host(0, {}, f"cannot read {proc}: {exc.strerror}")
    if any(m.version == 1 and "memory" in m.controllers for m in mounts):
        return v1.probe([m for m in mounts if m.version == 1], PARENT_NAME)
    unified = [m for m in mounts if m.version == 2]
    if unified:
        return v2.probe(unified[0].path, own.get("", "/"), PARENT_NAME)
    return Host(0, {}, "no cgroup filesystem is mounted")


@functools.lru_cache(maxsize=None)
def _cached_host(euid: int) -> Host:
    return probe()


def host() -> Host:
    return _cached_host(os.geteuid())


def required_controllers(resources: Resources) -> List[str]:
    """The controllers only a cgroup can give (the pids limit has a fallback)."""
    wanted = []
    if resources.cpu_request is not None or resources.cpu_limit is not None:
        wanted.append("cpu")
    if resources.memory_request is not None or resources.memory_limit is not None:
        wanted.append("memory")
    return wanted


def check(resources: Resources, found: Optional[Host] = None) -> None:
    """InvalidError, before any work, if `resources` asks for what no cgroup here can enforce."""
    found = found or host()
    missing = [c for c in required_controllers(resources) if not found.has(c)]
    if missing:
        asked = "/".join(f"{c}=" for c in missing)
        raise InvalidError(f"{asked} needs a writable cgroup with the {' and '.join(missing)} controller, and "
                           f"there is none: {found.problem or 'not available'}. {_HOW_TO}")


@attrs.frozen
class SandboxCgroup:
    version: int
    dirs: Dict[str, str]  # controller -> this sandbox's cgroup directory (v2: one for all)

    def unique_dirs(self) -> List[str]:
        return sorted(set(self.dirs.values()))

    def to_json(self) -> dict:
        return {"version": self.version, "dirs": dict(self.dirs)}


def _module(version: int):
    return v1 if version == 1 else v2


def create(sandbox_id: str, resources: Resources, found: Optional[Host] = None,
           listed_in: Optional[Path] = None) -> Optional[SandboxCgroup]:
    """Make the sandbox's cgroup with its limits; None when no cgroup is usable here
    (check() already refused the requests that need one). With `listed_in` (the sandbox
    directory) it is listed there before it exists, so a creator killed half-way
    leaves nothing that gc cannot find; a failure removes it and the list."""
    found = found or host()
    if not found.parents:
        return None
    module = _module(found.version)
    cgroup = SandboxCgroup(found.version, {c: os.path.join(p, sandbox_id) for c, p in found.parents.items()})
    if listed_in is not None:
        save(cgroup, listed_in)
    try:
        key = (found.version, tuple(sorted(found.parents.items())))
        if key not in _prepared:
            module.prepare_parents(found)
            _prepared.add(key)
        made: List[str] = []
        try:
            _make(cgroup, module.limit_writes(resources), made)
        except (FileNotFoundError, InvalidError):
            # A parent removed, or (v2) its controllers turned off, since this process made it ready
            # (a limit's file missing: write() raised InvalidError): once more, after making sure.
            module.prepare_parents(found)
            _make(cgroup, module.limit_writes(resources), made)
    except BaseException:
        remove(cgroup)
        if listed_in is not None:
            os.unlink(SandboxDir(listed_in).cgroup_json)
        raise
    return cgroup


# The parents (`pysandbox/`, v2: with the controllers on) this process made ready, by host: nothing of
# pysandbox removes them, so each create need not make sure again (on cgroup v1, twelve system calls
# on every create); one removed since is made again by create().
_prepared: Set[Tuple[int, Tuple[Tuple[str, str], ...]]] = set()


def _make(cgroup: SandboxCgroup, writes: List[Tuple[str, str, str]], made: List[str]) -> None:
    """The sandbox's directories (those not in `made` yet, listed there as made) and its limits."""
    for path in cgroup.unique_dirs():
        if path not in made:
            os.mkdir(path, 0o755)
            made.append(path)
    for controller, name, value in writes:
        if controller not in cgroup.dirs:
            continue
        path = os.path.join(cgroup.dirs[controller], name)
        if name not in OPTIONAL_FILES or os.path.exists(path):
            write(path, value)


def save(cgroup: SandboxCgroup, directory: Path) -> None:
    write_json_atomic(SandboxDir(directory).cgroup_json, cgroup.to_json(), durable=False)


def load(directory: Path, mounts: Optional[List[Mount]] = None) -> Optional[SandboxCgroup]:
    """The cgroup a sandbox directory lists, or None if it lists none.

    Whatever is listed here gets killed and removed after a crash, so the list is not
    trusted: each directory must be this sandbox's own, `<cgroup mount>/.../pysandbox/<id>`
    (the leaf named by the sandbox directory's id, under a parent named PARENT_NAME, on a
    cgroup filesystem of the listed version, with no `..`). Anything else raises
    ExecutionError naming the file, and nothing it names is touched."""
    path = SandboxDir(directory).cgroup_json
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ExecutionError(f"{path} is unreadable or corrupt ({exc}); the cgroup it lists is left alone.") from None
    mounts = _mounts() if mounts is None else mounts
    try:
        cgroup = SandboxCgroup(data["version"], dict(data["dirs"]))
        bad = [p for p in cgroup.dirs.values() if not _is_sandbox_cgroup(p, directory.name, cgroup.version, mounts)]
    except (KeyError, TypeError, ValueError) as exc:
        raise ExecutionError(f"{path} is corrupt ({exc!r}); the cgroup it lists is left alone.") from None
    if bad or cgroup.version not in (1, 2) or not all(isinstance(c, str) for c in cgroup.dirs):
        raise ExecutionError(f"{path} names {bad[0] if bad else cgroup.to_json()!r}, which is not a pysandbox cgroup "
                             f"of sandbox {directory.name}: refused, nothing was killed or removed.")
    return cgroup


def _is_sandbox_cgroup(path: object, sandbox_id: str, version: object, mounts: List[Mount]) -> bool:
    return (isinstance(path, str) and os.path.isabs(path) and os.path.normpath(path) == path
            and os.path.basename(path) == sandbox_id and os.path.basename(os.path.dirname(path)) == PARENT_NAME
            and any(m.version == version and path.startswith(m.path.rstrip("/") + "/") for m in mounts))


@functools.lru_cache(maxsize=1)
def _mounts() -> List[Mount]:
    try:
        return parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return []


def read_stats(cgroup: SandboxCgroup) -> SandboxStats:
    return _module(cgroup.version).read_stats(cgroup.dirs)


def remove(cgroup: SandboxCgroup, patience: float = 2.0) -> None:
    """Kill whatever is still in the cgroup, then remove its directories."""
    for directory in cgroup.unique_dirs():
        deadline = time.monotonic() + patience
        while True:
            kill_all(directory)
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)  # killed tasks leave the cgroup once the kernel has reaped them


def kill_all(directory: str) -> None:
    """SIGKILL every process in the cgroup: cgroup.kill where the kernel has it, else
    one by one through pidfds, each re-checked as a member after opening (no pid reuse race)."""
    try:
        with open(os.path.join(directory, "cgroup.kill"), "w") as f:
            f.write("1")
        return
    except OSError:
        pass
    for pid in _members(directory):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if pid in _members(directory):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(pidfd)


def _members(directory: str) -> Tuple[int, ...]:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return tuple(int(line) for line in f if line.strip())
    except OSError:
        return ()


def remove_listed(directory: Path) -> None:
    """Remove the cgroup a sandbox directory lists (its supervisor could not); ExecutionError,
    and nothing done, if the list names anything but this sandbox's own cgroup (see load)."""
    cgroup = load(directory)
    if cgroup is not None:
        remove(cgroup)
