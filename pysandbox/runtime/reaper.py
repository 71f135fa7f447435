"""Collect the supervisors this process started (its children) once they exit.

Each supervisor's pidfd sits in one epoll set, so a reap asks the kernel only about the
supervisors that exited: its cost follows those, not every supervisor ever started (a
long-lived process may have started thousands). A pidfd names the process, not its pid: a
supervisor the application's own wait() collected reads as ended (waitid: ECHILD) and is
forgotten, and a reused pid is never taken for it. A pidfd is an fd of the caller's, so past
a quarter of its RLIMIT_NOFILE soft limit (or where pidfd_open fails: Linux before 5.3)
supervisors are kept by pid and asked one by one with waitpid(WNOHANG).
"""

from __future__ import annotations

import os
import resource
import select
import threading
from typing import Dict, Optional, Set

_lock = threading.Lock()
_epoll: Optional[select.epoll] = None
_pidfds: Dict[int, int] = {}  # pidfd -> supervisor pid, each registered in _epoll
_pids: Set[int] = set()  # supervisors kept without a pidfd


def track(pid: int) -> None:
    """Reap the supervisor `pid`, a child just spawned, once it exits."""
    global _epoll
    with _lock:
        pidfd = _open_pidfd(pid)
        if pidfd is None:
            _pids.add(pid)
            return
        if _epoll is None:
            _epoll = select.epoll()
        _epoll.register(pidfd, select.EPOLLIN)
        _pidfds[pidfd] = pid


def _open_pidfd(pid: int) -> Optional[int]:
    if len(_pidfds) >= resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def reap_finished() -> None:
    """Collect the supervisors of ours that have exited."""
    with _lock:
        if _pidfds:
            assert _epoll is not None
            for pidfd, _ in _epoll.poll(0, len(_pidfds)):  # only those that exited are readable
                _collect_pidfd(pidfd)
        for pid in list(_pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                _pids.discard(pid)


def _collect_pidfd(pidfd: int) -> None:
    try:
        if os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG) is None:
            return  # readable a moment before it can be waited for: the next reap takes it
    except ChildProcessError:
        pass  # the application's own wait() collected it
    assert _epoll is not None
    _epoll.unregister(pidfd)
    os.close(pidfd)
    del _pidfds[pidfd]


def tracked() -> Set[int]:
    """The supervisors not collected yet (for tests and diagnostics)."""
    with _lock:
        return set(_pidfds.values()) | _pids


def _forget_after_fork() -> None:
    # A forked child's supervisors are not its children; its copy of the epoll fd shares the
    # parent's interest list, so it is closed, never changed.
    global _epoll, _lock
    _lock = threading.Lock()
    if _epoll is not None:
        _epoll.close()
        _epoll = None
    for pidfd in _pidfds:
        os.close(pidfd)
    _pidfds.clear()
    _pids.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
