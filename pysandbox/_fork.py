"""Handles that hold descriptors of one process are useless, and harmful, in a fork of it.

A child of os.fork() (a multiprocessing fork Pool, a daemonizing library) inherits
every descriptor: with our copies it could steal a process's exit report or output
from the parent, or keep a process's stdin open after the parent closed it. Like
subprocess's pipes, whose copies a child should not use, each live handle is
tracked here (weakly: tracking never keeps one alive) and, in the child only,
closes its copies at once and refuses any later use with a clear error.
"""

from __future__ import annotations

import os
import weakref

from .exception import InvalidError

_live: "weakref.WeakSet" = weakref.WeakSet()
pid = os.getpid()  # this process's, kept current in a fork: a handle records its owner without a syscall


def track(handle) -> None:
    """`handle._after_fork_in_child()` will run in every forked child while `handle` lives."""
    _live.add(handle)


def inherited_error(what: str, owner: int) -> InvalidError:
    return InvalidError(
        f"This {what} belongs to process {owner}, which started it; this process ({os.getpid()}) inherited "
        f"it through fork() and cannot use it. Use it in the parent, or start the exec in the child."
    )


def _after_fork_in_child() -> None:
    global pid
    pid = os.getpid()
    # One thread and no lock taken: the handles' locks may have been held by
    # other threads of the parent at the moment of the fork.
    for handle in list(_live):
        handle._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
