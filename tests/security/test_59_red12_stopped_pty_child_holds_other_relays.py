"""Red team (red12): a pty exec's child that sandbox code stops before its exec still holds every fd init had
when it forked, among them the end socket of every other pty exec then running, and the host's read of those
execs' output never ends.

Since f7e11a1 init no longer waits on a pty exec's child (fork_with_terminal, `detached`): a child that sandbox
code SIGSTOPs between its fork and its exec stalls "only its own exec". But that child is a fork of init:
terminal_child only marks init's fds close-on-exec (close_range(CLOSE_RANGE_CLOEXEC)), so until its exec, and
for as long as it is stopped, it holds a copy of each of them (seen: some twenty). One kind matters: the end
socket of another pty exec's relay (init_exec.c, `relay_end`), which init closes when that exec's process ends so
that its relay drains the terminal and ends even while something else still holds the terminal's slave (a
process the command left in the background, or sandbox code that opened /dev/pts/N). The relay waits for that
end of file (handoff_relay, ended()); with a copy in the stopped child it never comes, so the host's
`process.stdout.read()` of an exec that has exited (wait() returned, its timeout included) blocks until the
sandbox ends. The fds cannot be taken from the child (init and its children are not dumpable: /proc/<pid>/fd
gives EACCES), and only the sandbox's own use is denied, hence low.

Suggested fix: make the end signal something a copy cannot hold back: init writes a byte on `relay_end` before
closing it (ended() already treats any byte as the end), or the relay learns of the end from a pidfd/an
explicit message rather than from an end of file. Closing init's other fds at the start of the detached child
(close_range(3, ~0U, 0) but the child's own fds) only narrows the window: sandbox code can stop the child at
any instant after its fork.

Fixed: init ends a relay with a byte on its end socket, then the close (init_exec.c, end_relay)."""

import threading

import pytest

from pysandbox import bounds

from ._inside import start_while
from ._red12_spinner import LONG_PATH
from .test_58_red11b_init_frozen_by_a_stopped_child import STOPPER

pytestmark = pytest.mark.rootless

# Sandbox code that opens the terminal of the exec running `sleep 7.5` and holds it: the relay can then learn
# of that exec's end only from init (the end socket), not from the terminal.
HOLDER = r"""
while :; do
  for p in /proc/[0-9]*; do
    case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in
      "sleep 7.5 ") t=$(readlink $p/fd/0) && exec 3<>"$t" && echo held && exec sleep 1000;;
    esac
  done
done
"""


def _output_ends(process, seconds):
    out = []
    reader = threading.Thread(target=lambda: out.append(process.stdout.read()), daemon=True)
    reader.start()
    reader.join(seconds)
    return bool(out)


def _exec_with_held_terminal(sb):
    process = sb.exec("sleep", "7.5", pty=True)
    holder = sb.exec("sh", "-c", HOLDER)
    assert next(iter(holder.stdout)).strip() == "held"
    return process, holder


def test_a_pty_exec_output_ends_with_its_process_though_its_terminal_is_held(sb):
    # The property the end socket gives: the host's read ends once the process has.
    process, _holder = _exec_with_held_terminal(sb)
    assert process.wait() == 0
    assert _output_ends(process, 20)


def test_a_stopped_pty_child_does_not_hold_back_another_execs_output(sb, monkeypatch):
    monkeypatch.setenv(bounds.variable("init_reply_s"), "5")  # the caught exec's exec() times out after it
    process, _holder = _exec_with_held_terminal(sb)
    # While that exec runs, sandbox code stops a later pty exec's child before its exec (test_58's stopper).
    stopper = sb.exec("sh", "-c", STOPPER)
    # Kept: a dropped handle would kill the stopped exec.
    _held = start_while(lambda: stopper.poll() is None, lambda: sb.exec("true", pty=True, env={"PATH": LONG_PATH}))
    assert stopper.wait() == 0, "the stopper never caught a child of init before its exec"
    assert process.wait() == 0  # it ended, and init closed its end socket
    assert _output_ends(process, 20)
