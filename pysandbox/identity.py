"""Who a sandbox's users are on the host: the uid and gid ranges its user namespace maps.

* A root caller: 65,536 host uids and gids reserved for pysandbox on this host and mapped
  whole, sandbox uid N being host uid START + N. The range is reserved once, with an entry for
  the system user `pysandbox` in /etc/subuid and /etc/subgid (as rootless podman setups do), so
  that `useradd` never gives it to a new user, who could then become those uids through
  newuidmap and reach root's sandboxes; it is chosen where no other entry lies, reused ever
  after, and never taken from anyone.
* An unprivileged caller with a subordinate range in /etc/subuid and /etc/subgid: sandbox root
  is the caller, uids and gids 1.. are that range (up to 65,535), mapped by newuidmap and
  newgidmap (Debian's `uidmap` package).
* An unprivileged caller without one: sandbox root is the caller and nothing else is mapped, so
  whatever switches user (su, apt dropping to _apt, chown to another uid) fails; `pysandbox
  doctor` says so.

native/common/userns.c makes the namespaces from this (the supervisor's --userns-* options).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import grp
import logging
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from typing import Iterator, List, Optional, Tuple

import attrs

from . import _beneath
from .exception import InvalidError

RANGE = 65536
OWNER = "pysandbox"  # the /etc/subuid and /etc/subgid entries of root's range, and its system user
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
LOCK = "/etc/.pwd.lock"  # shadow's lckpwdf lock: useradd holds it while it picks ranges
TOOLS_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
logger = logging.getLogger("pysandbox")

IdMap = Tuple[Tuple[int, int, int], ...]  # (inside, outside, count) per range


@attrs.frozen
class Identity:
    uids: IdMap
    gids: IdMap
    newidmap: bool = False  # mapped by newuidmap/newgidmap (an unprivileged caller's range)

    @property
    def owner(self) -> Tuple[int, int]:
        """The host (uid, gid) of sandbox root: files sandbox root must own belong to these."""
        return self.uids[0][1], self.gids[0][1]

    @property
    def size(self) -> int:
        """How many uids (and gids) a sandbox has: 1 when only its root is mapped."""
        return min(sum(r[2] for r in self.uids), sum(r[2] for r in self.gids))

    def supervisor_args(self) -> List[str]:
        argv = []
        for flag, ranges in (("--userns-uid", self.uids), ("--userns-gid", self.gids)):
            for inside, outside, count in ranges:
                argv += [flag, f"{inside}:{outside}:{count}"]
        if self.newidmap:
            argv += ["--newuidmap", _tool("newuidmap"), "--newgidmap", _tool("newgidmap")]
        return argv


def _tool(name: str) -> str:
    found = shutil.which(name, path=TOOLS_PATH)
    if found is None:
        raise InvalidError(f"{name} is missing: install the `uidmap` package (apt-get install uidmap).")
    return found


@functools.lru_cache(maxsize=None)
def _current(euid: int) -> Identity:
    uid, gid = os.geteuid(), os.getegid()
    if euid == 0 and _whole_id_space():
        start = root_range_start()
        return Identity(((0, start, RANGE),), ((0, start, RANGE),))
    names = (_user_name(uid), str(uid))
    sub_uids, sub_gids = _entries(SUBUID, names), _entries(SUBGID, names)
    if euid != 0 and sub_uids and sub_gids and _has_tools():
        uids = ((0, uid, 1), (1, sub_uids[0][0], min(sub_uids[0][1], RANGE - 1)))
        gids = ((0, gid, 1), (1, sub_gids[0][0], min(sub_gids[0][1], RANGE - 1)))
        if _mapped("uid_map", uids[1][1:]) and _mapped("gid_map", gids[1][1:]):
            return Identity(uids, gids, newidmap=True)
    return Identity(((0, uid, 1),), ((0, gid, 1),))  # only sandbox root: the caller


def _mapped(name: str, ids: Tuple[int, int]) -> bool:
    """Whether this process's user namespace has the ids (first, count): not so in a user namespace
    of its own that maps fewer (a caller run under `unshare --user`, a rootless container), where
    neither newuidmap nor root could map them for a sandbox."""
    first, count = ids
    try:
        with open(f"/proc/self/{name}") as f:
            ranges = [tuple(map(int, line.split()[:3])) for line in f if line.strip()]
    except OSError:
        return False
    return any(inside <= first and first + count <= inside + size for inside, _, size in ranges)


def _whole_id_space() -> bool:
    """Whether this is a root that can give sandboxes a range of their own (the host's, or a
    namespace's that maps every id); otherwise sandbox root is this root alone."""
    return _mapped("uid_map", (0, 1 << 31)) and _mapped("gid_map", (0, 1 << 31))


def current() -> Identity:
    """This caller's identity (computed, and for root reserved, once per process)."""
    return _current(os.geteuid())


def _has_tools() -> bool:
    return all(shutil.which(name, path=TOOLS_PATH) for name in ("newuidmap", "newgidmap"))


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def parse_entries(text: str) -> List[Tuple[str, int, int]]:
    """(name, start, count) of each well-formed line of /etc/subuid or /etc/subgid."""
    entries = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit() and int(fields[2]) > 0:
            entries.append((fields[0], int(fields[1]), int(fields[2])))
    return entries


def _read_entries(path: str) -> List[Tuple[str, int, int]]:
    try:
        with open(path) as f:
            return parse_entries(f.read())
    except FileNotFoundError:
        return []


def _entries(path: str, names) -> List[Tuple[int, int]]:
    return [(start, count) for name, start, count in _read_entries(path) if name in names]


def _overlaps(start: int, count: int, entries, owner: Optional[str] = None) -> List[Tuple[str, int, int]]:
    return [e for e in entries if e[0] != owner and e[1] < start + count and start < e[1] + e[2]]


def choose_range(subuids, subgids, low: int = 100000, high: int = 600100000) -> int:
    """The lowest start of RANGE ids from `low`, aligned to RANGE, that no entry of either file holds."""
    taken = sorted((start, start + count) for _, start, count in subuids + subgids)
    start = -(-low // RANGE) * RANGE
    for first, end in taken:
        if end <= start:
            continue
        if first >= start + RANGE:
            break
        start = -(-end // RANGE) * RANGE
    if start + RANGE > high:
        raise InvalidError(f"No free range of {RANGE} ids is left between {low} and {high} in {SUBUID} and "
                           f"{SUBGID}; free one, or set PYSANDBOX_SANDBOX_UID to the start of one.")
    return start


def root_range_start() -> int:
    """The first host uid (and gid) of root's sandboxes: PYSANDBOX_SANDBOX_UID, or the range
    reserved for pysandbox on this host, reserved now if it is not yet."""
    configured = os.environ.get("PYSANDBOX_SANDBOX_UID")
    if configured:
        if not configured.isdigit() or int(configured) == 0:
            raise InvalidError(f"PYSANDBOX_SANDBOX_UID={configured!r} must be the first of {RANGE} free host uids.")
        start = int(configured)
        check_free(start)
        _check_no_accounts(start)
        return start
    found = _reserved()
    if found is not None:
        return found
    _ensure_system_user()  # before the lock, which useradd takes itself
    with _locked():
        found = _reserved()  # another process may have reserved it meanwhile
        if found is None:
            found = _reserve()
    return found


def _reserved() -> Optional[int]:
    uids = [e for e in _read_entries(SUBUID) if e[0] == OWNER]
    gids = [e for e in _read_entries(SUBGID) if e[0] == OWNER]
    if not uids and not gids:
        return None
    if not (uids and gids and uids[0][1:] == gids[0][1:] and uids[0][2] >= RANGE):
        raise InvalidError(f"The {OWNER} entries of {SUBUID} and {SUBGID} disagree or are too small "
                           f"(need the same start and {RANGE} ids in both); fix them and retry.")
    check_free(uids[0][1])
    return uids[0][1]


def check_free(start: int) -> None:
    """InvalidError if another entry of /etc/subuid or /etc/subgid overlaps root's range."""
    for path in (SUBUID, SUBGID):
        clash = _overlaps(start, RANGE, _read_entries(path), owner=OWNER)
        if clash:
            name, first, count = clash[0]
            raise InvalidError(f"Root's sandbox ids {start}..{start + RANGE - 1} overlap {name}'s range "
                               f"{first}..{first + count - 1} in {path}: that user could become root's sandbox "
                               f"users. Give one of them another range.")


def _check_no_accounts(start: int) -> None:
    """InvalidError if a user or group of this host has an id in root's range (PYSANDBOX_SANDBOX_UID's
    "free host ids"): that account would own the sandboxes' files and be their users on the host."""
    end = start + RANGE
    taken = [("user", entry.pw_name, entry.pw_uid) for entry in pwd.getpwall() if start <= entry.pw_uid < end]
    taken += [("group", entry.gr_name, entry.gr_gid) for entry in grp.getgrall() if start <= entry.gr_gid < end]
    if taken:
        kind, name, number = min(taken, key=lambda t: t[2])
        raise InvalidError(f"PYSANDBOX_SANDBOX_UID={start}: sandbox ids would be host ids {start}..{end - 1}, "
                           f"which hold the {kind} {name} ({number}); give the first of {RANGE} ids no user or "
                           f"group has, or unset it to use the range reserved for pysandbox.")


@contextlib.contextmanager
def _locked(patience: float = 30.0) -> Iterator[None]:
    """shadow's lock, which useradd and usermod hold while they change these files."""
    fd = os.open(LOCK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise InvalidError(f"{LOCK} stayed locked for {patience:.0f} s (a useradd running?); "
                                       "retry.") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _login_defs(key: str, default: int) -> int:
    try:
        with open("/etc/login.defs") as f:
            for line in f:
                fields = line.split()
                if len(fields) == 2 and fields[0] == key and fields[1].isdigit():
                    return int(fields[1])
    except OSError:
        pass
    return default


def _reserve() -> int:
    start = choose_range(_read_entries(SUBUID), _read_entries(SUBGID),
                         _login_defs("SUB_UID_MIN", 100000), _login_defs("SUB_UID_MAX", 600100000))
    for path in (SUBUID, SUBGID):
        with open(path, "a") as f:
            f.write(f"{OWNER}:{start}:{RANGE}\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(path, 0o644)
    logger.warning("pysandbox: reserved host ids %d..%d for root's sandboxes (%s in %s and %s)",
                   start, start + RANGE - 1, OWNER, SUBUID, SUBGID)
    return start


def _ensure_system_user() -> None:
    """A locked system user named `pysandbox`, so no one else can be created under the name
    that newuidmap would let use the range."""
    try:
        pwd.getpwnam(OWNER)
        return
    except KeyError:
        pass
    useradd = shutil.which("useradd", path=TOOLS_PATH)
    if useradd is not None:
        subprocess.run([useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                        "/usr/sbin/nologin", "--user-group", OWNER], env={"PATH": TOOLS_PATH}, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


LEGACY_ROOT_UID = 100000  # the single uid root's sandboxes had before ranges, unless /etc/subuid said otherwise
MARKER = "identity.json"


def adopt_state(root: str) -> None:
    """Keep a state directory made with other sandbox ids usable: the first time a root
    caller uses it with its range, files of the old ids move to the same ids of the range
    (before ranges, sandbox root was one host uid, and every layer and volume file its)."""
    if os.geteuid() != 0 or current().size == 1:
        return  # an unprivileged caller's sandbox root was, and is, the caller (so is a root without a range)
    now = current().uids[0][1]
    marker = os.path.join(root, MARKER)
    try:
        with open(marker) as f:
            was = int(f.read().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        was = _legacy_root_uid()
    if was == now and os.path.exists(marker):
        return
    if was != now:
        moved = _move_ids(root, was, now)
        if moved:
            logger.warning("pysandbox: moved %d files of %s from sandbox ids %d.. to %d.. (once, for the reserved "
                           "range)", moved, root, was, now)
    tmp = f"{marker}.{os.getpid()}.{secrets.token_hex(4)}.tmp"  # two processes may adopt at once
    with open(tmp, "w") as f:
        f.write(f"{now}\n")
    os.replace(tmp, marker)


def _keep_setid_bits(dir_fd: int, name: str, mode: int) -> None:
    """chown cleared the file's setuid/setgid bits: put them back, on the very file (by fd: the
    tree may be changing)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, mode & 0o7777)
    finally:
        os.close(fd)


def _legacy_root_uid() -> int:
    for name, start, _ in _read_entries(SUBUID):
        if name in ("root", "0"):
            return start
    return LEGACY_ROOT_UID


def _move_ids(root: str, old: int, new: int) -> int:
    """lchown every file of ids old..old+RANGE-1 to the same offset from `new`; how many."""
    moved = 0

    def shifted(value: int) -> int:
        return new + value - old if old <= value < old + RANGE else value

    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for _, info, dir_fd, name in _beneath.walk(root_fd):  # volumes: sandboxes may be writing them
            uid, gid = shifted(info.st_uid), shifted(info.st_gid)
            if (uid, gid) == (info.st_uid, info.st_gid):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_mode & 0o6000:
                    _keep_setid_bits(dir_fd, name, info.st_mode)
                moved += 1
    finally:
        os.close(root_fd)
    return moved
