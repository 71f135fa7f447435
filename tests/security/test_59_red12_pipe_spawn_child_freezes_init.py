"""Red team (red12): sandbox code stops a pipe exec's child inside posix_spawn, and init, waiting on it, stops
serving the sandbox.

test_58 (red11b) left this window open as "a window of microseconds, with nothing of the caller's in it that
could widen it": a pipe exec's child comes from posix_spawn, whose clone(CLONE_VM | CLONE_VFORK) keeps init
waiting until the child execs. It needs no widening: sandbox code that sends SIGSTOP to each next pid
(tests/security/_red12_spinner.py) catches a new process within microseconds of its fork, and the first few
pipe execs give it one still in posix_spawn's child (init's program and session: before its setsid). init
then waits for good (vfork's wait takes no signal but a fatal one), and every later call of the sandbox (exec,
file operations) times out after PYSANDBOX_INIT_REPLY_TIMEOUT. Only the sandbox's own use is denied
(terminate() goes through the supervisor), as in test_58: low to medium, but reliably reproduced, where test_58
took it for a race out of reach.

Suggested fix: no exec may keep init waiting on a child sandbox code can signal: spawn pipe execs as pty execs
now are (fork, or clone(CLONE_VM) without CLONE_VFORK on a stack of init's, the child reporting its own
failure to start and exiting 126/127), or make the child unsignalable by sandbox code until its exec (e.g. in
a pid namespace or with credentials sandbox code cannot signal), at the cost of the spawn's CPU.

Fixed: a pipe exec's child is forked, as a pty exec's (native/init/spawn.c): it searches PATH and says why it
failed to start itself, and init learns of its exec from a close-on-exec pipe it polls with the rest. posix_spawn
starts processes under gVisor only (there init still waits: docs/RUNNERS.md)."""

import pytest

from pysandbox import bounds

from ._red12_spinner import catch_stopped_child
from .test_58_red11b_init_frozen_by_a_stopped_child import stalls_only_its_own_exec

pytestmark = pytest.mark.rootless


def test_init_serves_the_sandbox_while_a_pipe_execs_child_is_stopped_before_its_exec(sb, monkeypatch):
    # The caught exec's exec() times out after this bound (its STARTED waits for the exec); no other call may.
    monkeypatch.setenv(bounds.variable("init_reply_s"), "5")
    started, caught = catch_stopped_child(sb, "pipe")
    stalls_only_its_own_exec(sb, caught, started)
