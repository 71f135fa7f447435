"""A warm spare: a supervisor started ahead of this process's next create (native/supervisor/spare.h).

After a create, launch starts one supervisor that is no sandbox's yet. It makes the user and network
namespaces a sandbox of this caller's identity runs in, then waits on a socket. The next create hands it
its command line and descriptors (claim) instead of spawning a supervisor, so neither the supervisor's
start nor the namespaces are on that create's path. A spare serves one sandbox; the next is started
after it is claimed.

A spare holds nothing of any sandbox until claimed: no directory, record, cgroup or file. It ends
when the socket's other end closes: when this process exits, or when it is let go because the caller's
identity, or what a supervisor inherits from the caller (_inherited), changed since it started. A forked
child never uses its parent's spare (it closes its copy of the socket at once). With
PYSANDBOX_WARM_SPARE=0 creates start and take none.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import os
import select
import socket
import threading
from typing import Iterator, Optional, Sequence, Tuple

from .. import _fork, settings
from .._state.files import read_whole

ROOM = 16384  # bytes of /proc/PID/cmdline the claim's command line may fill (spare.h --room)
CLAIM_MAX = 64 * 1024  # the longest command line a spare takes (spare.c CLAIM_MAX)

_lock = threading.Lock()
_waiting: Optional["Spare"] = None  # this process's spare, not yet claimed
_one_shot = 0  # > 0: inside one_shot(), no spare is started
# Held from a spare's socketpair until its Spare is tracked (_fork), and by every os.fork() meanwhile: a child
# forked by another thread in between would keep an untracked copy of our end, and the spare would outlive us.
_starting = threading.Lock()
os.register_at_fork(before=_starting.acquire, after_in_parent=_starting.release,
                    after_in_child=_starting.release)


class Spare:
    """A started spare: its pid, the identity options it was started with, its socket, a pidfd of it
    (-1: none could be opened)."""

    def __init__(self, pid: int, key: Tuple[str, ...], sock: socket.socket, inherited: Tuple[object, ...] = (),
                 pidfd: int = -1) -> None:
        self.pid, self.key, self._sock, self.inherited, self._pidfd = pid, key, sock, inherited, pidfd
        _fork.track(self)

    def usable(self, key: Tuple[str, ...], inherited: Tuple[object, ...] = ()) -> bool:
        """Started as `key` says (the supervisor's path, the identity options) and with what a supervisor
        spawned now would inherit (_inherited), and still waiting (its end of the socket open)."""
        if self._sock.fileno() < 0 or key != self.key or inherited != self.inherited:
            return False
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)  # POLLHUP and POLLERR come unasked
        return not poller.poll(0)

    def claim(self, argv: Sequence[str], fds: Sequence[int]) -> bool:
        """Hands the spare its sandbox: the supervisor's command line and descriptors (spare.h's order).
        False if it could not take them (gone meanwhile, or the command line too long): start one then."""
        data = os.fsencode("\0".join(argv) + "\0")  # one encode: a claim's argv has some 160 words
        try:
            if len(data) > CLAIM_MAX:
                return False
            self._sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            # Its children hold its end of the socket too while they make the namespaces: sent is not
            # taken if it died meanwhile (then the claim's copies go with them, and ours start a supervisor).
            # One that has ended may have taken it and run its sandbox to the end already: its answer says so
            # (a second supervisor for that sandbox found its cgroup gone and recorded it as failed: test_19).
            return not self._exited() or self._took()
        except OSError:
            return False
        finally:
            self.close()

    def _took(self) -> bool:
        """Whether the spare answered that it took the claim (spare.h), before it ended."""
        try:
            return self._sock.recv(1, socket.MSG_DONTWAIT) == b"t"
        except OSError:
            return False

    def _exited(self) -> bool:
        if self._pidfd < 0:
            return False  # not known: as before pidfds
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)  # readable once it has exited
        return bool(poller.poll(0))

    def close(self) -> None:
        """Lets it go, if unclaimed: it sees end of file and exits."""
        self._sock.close()
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1

    def _after_fork_in_child(self) -> None:
        self.close()  # the parent's: only its end of file may end the spare


def take(supervisor: str, identity: Sequence[str]) -> Optional[Spare]:
    """This process's spare, if one of this supervisor waits for this identity and what a supervisor spawned
    now would inherit (any other is let go), and spares are on (else one waiting waits on)."""
    if not settings.warm_spare():
        return None
    spare = _let_go()
    if spare is not None and spare.usable((supervisor, *identity), _inherited()):
        return spare
    if spare is not None:
        spare.close()
    return None


@contextlib.contextmanager
def one_shot() -> Iterator[None]:
    """Starts no spare meanwhile: for a caller that makes one sandbox and ends (the CLI)."""
    global _one_shot
    _one_shot += 1
    try:
        yield
    finally:
        _one_shot -= 1


def _let_go() -> Optional[Spare]:
    """The waiting spare, which no longer waits here."""
    global _waiting
    with _lock:
        spare, _waiting = _waiting, None
    return spare


def start(supervisor: str, identity: Sequence[str], signals: Sequence[int], namespaces: bool = True) -> Optional[int]:
    """Starts this process's next spare, unless one waits or spares are off; its pid (a child of ours, for
    the caller to reap), or None. `signals`: blocked and at their default action, as for a supervisor.
    `namespaces`: whether it makes them ahead (not where the runner child must: spare.h)."""
    global _waiting
    if not settings.warm_spare() or _one_shot or _waiting is not None:
        return None
    inherited = _inherited()
    with _starting:  # no fork until the socket is tracked: a child must never keep an untracked end
        try:
            ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            return None  # out of descriptors: a head start for the next create, never this one's failure
        try:
            argv = [supervisor, "--spare", "--room", " " * ROOM, *([] if namespaces else ["--no-namespaces"])]
            pid = os.posix_spawn(supervisor, [*argv, *identity],
                                 settings.HOST_ENV, setsid=True, setsigmask=signals, setsigdef=signals,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, its.fileno(), 0),
                                               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                                               (os.POSIX_SPAWN_DUP2, 1, 2)])
        except OSError:
            ours.close()
            return None  # the next create starts its supervisor itself
        finally:
            its.close()
        try:
            pidfd = os.pidfd_open(pid)  # our child, not reaped yet: its pid is its own
        except OSError:
            pidfd = -1
        spare = Spare(pid, (supervisor, *identity), ours, inherited, pidfd)
    with _lock:
        kept = _waiting is None
        if kept:
            _waiting = spare
    if not kept:  # another thread's came first
        spare.close()
    return pid


# Of this thread's /proc status: what a process it spawns keeps, posix_spawn's signal settings aside.
_STATUS_INHERITED = frozenset([b"Umask", b"Uid", b"Gid", b"Groups", b"CapInh", b"CapPrm", b"CapEff", b"CapBnd",
                               b"CapAmb", b"SigIgn", b"NoNewPrivs", b"Seccomp", b"Seccomp_filters",
                               b"Cpus_allowed_list", b"Mems_allowed_list"])


def _inherited() -> Tuple[object, ...]:
    """What a supervisor spawned by this thread now inherits and hands down to its sandbox: the resource
    limits, umask, credentials and capability sets, ignored signals, no_new_privs, seccomp filters, CPU and
    memory nodes, cgroup, OOM score adjustment and nice value (not the working directory, which the sandbox
    never sees: a deleted one would make every spare unusable). A spare started under others is let go, as
    a fresh supervisor would take the caller's new ones (tests/security/test_65_red15_spare_stale_inheritance.py).
    Unreadable: a value no spare has."""
    try:
        status = tuple(line for line in read_whole("/proc/thread-self/status").splitlines()
                       if line.partition(b":")[0] in _STATUS_INHERITED)
        return (*status, *map(read_whole, ("/proc/self/limits", "/proc/self/cgroup", "/proc/self/oom_score_adj")),
                os.getpriority(os.PRIO_PROCESS, 0))
    except OSError as exc:
        return ("unreadable", str(exc), str(object()))


@atexit.register
def _at_exit() -> None:
    spare = _let_go()
    if spare is not None:
        spare.close()
