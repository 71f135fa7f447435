"""Process identity: a process named so that neither a reused pid nor a record from before a reboot
is ever mistaken for it."""

from __future__ import annotations

import functools
import os
from typing import Any, Optional, Tuple

import attrs

from .files import is_int

_STAT_MAX = 4096  # /proc/<pid>/stat: 52 numbers and a name of at most 64 bytes


@functools.lru_cache(maxsize=None)
def boot_id() -> Optional[str]:
    """This boot's id: a pid and start time recorded under another boot names some other process."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _stat(pid: int) -> Optional[Tuple[bytes, list]]:
    """(command name, fields 3.. of /proc/<pid>/stat), or None if the process is gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        data = os.read(fd, _STAT_MAX)  # one read: procfs hands the whole line over at once
    except ProcessLookupError:
        return None
    finally:
        os.close(fd)
    if not data:
        return None  # the process was reaped between the open and the read
    end = data.rindex(b")")
    return data[data.index(b"(") + 1:end], data[end + 2:].split()


@attrs.frozen
class ProcessRef:
    """A process named by pid, start time (clock ticks after boot, as the kernel reports
    it) and boot id, so neither a reused pid nor a record from before a reboot is ever
    mistaken for the process. Records written before boot ids were kept have none."""

    pid: int
    start_time: int
    boot_id: Optional[str] = None

    @classmethod
    def of(cls, pid: int) -> "ProcessRef":
        found = _stat(pid)
        if found is None:
            raise ProcessLookupError(pid)
        return cls(pid, int(found[1][19]), boot_id())

    @classmethod
    def current(cls) -> "ProcessRef":
        """This process (read once per process: a create names its creator, a claim its claimant)."""
        global _current
        if _current is None or _current.pid != os.getpid():  # a forked child is another process
            _current = cls.of(os.getpid())
        return _current

    @classmethod
    def from_json(cls, data: Any) -> "ProcessRef":
        """ValueError unless `data` is what to_json() wrote (or an older record without a boot id)."""
        if not (isinstance(data, dict) and is_int(data.get("pid"), 1) and is_int(data.get("start_time"))
                and isinstance(data.get("boot_id", ""), (str, type(None)))):
            raise ValueError(f"not a process (pid, start_time, boot_id): {data!r:.200}")
        return cls(data["pid"], data["start_time"], data.get("boot_id"))

    def to_json(self) -> dict:
        return attrs.asdict(self)

    def alive(self, program: Optional[bytes] = None) -> bool:
        """Whether the recorded process still runs (and, given `program`, runs that program: for
        a record without a boot id, which might come from before a reboot, that is what proves it)."""
        now = boot_id()
        if self.boot_id is not None and now is not None and self.boot_id != now:
            return False  # recorded before a reboot
        found = _stat(self.pid)
        if found is None:
            return False
        name, fields = found
        if int(fields[19]) != self.start_time or fields[0] in (b"Z", b"X"):
            return False
        return program is None or name == os.path.basename(program)[:15]  # the kernel keeps 15 bytes


_current: Optional[ProcessRef] = None  # ProcessRef.current()
