"""Red team (red13): a pipe exec's child that sandbox code stops before its exec holds a copy of the
entrypoint's stdin write end, and `sb.stdin.write_eof()` no longer ends the entrypoint's input.

Since cd5c66c every exec's child (pipe execs too, not only pty execs) is forked and left to itself
(native/init/spawn.c, fork_child). Until its exec that child holds a copy of every descriptor init
had when it forked: child_start only marks them close-on-exec (close_range(CLOSE_RANGE_CLOEXEC)). One of them
is the write end of the entrypoint's stdin pipe, which init keeps until ENTRY_STDIN_CLOSE (init_entry.c,
`entry_stdin`): write_eof() closes the host's copy and asks init to close its own, and the entrypoint then reads
end of file. Sandbox code that SIGSTOPs a fresh child of init (tests/security/_red12_spinner.py, "pipe")
keeps one more copy open for as long as it likes, so an entrypoint that reads its stdin to the end (`cat`, a
server reading its input, `python -c 'sys.stdin.read()'`) never sees it: write_eof() returns, sb.wait() blocks
until the sandbox's timeout. Letting the child go (SIGCONT) ends it at once: it execs, and the close-on-exec
copy goes.

Reproduced: bubblewrap and nsjail, root and rootless, with a pipe exec's child and with a pty exec's (the
gVisor runner still waits in init for each child's exec: no such window there). The pty execs' children held
the same copy since f7e11a1 (red12 fixed only the relay's end socket); the change makes every exec's child a
target. A pty exec's relay (handoff_fork_relay) has the same window between its fork and its close_range. Only the sandbox's own use is denied (its
entrypoint's input), as with test_58/test_59: low.

Suggested fix: in the detached child, close what is not its own before anything sandbox code can wait on:
close_range(3, ~0U, 0) right after the fork, having first moved the child's own fds (fds[0..2], cwd_fd,
keys_fd) below/above a fixed range, narrows the window to the instructions between fork and close_range but
does not close it (the spinner stops a child within microseconds of its fork). What closes it: a copy that
cannot hold the end back, as the relay's end socket got (end_relay: a byte, then the close), i.e. give the
entrypoint its stdin through a relay process or a socket whose end is a message, or fork the exec's child
from a small helper process of init's that holds nothing but what children need (a "spawner" that init
passes each request's fds to), so that a stopped child holds only its own exec's descriptors.

Fixed: init keeps the entrypoint's stdin parked, in flight on a socket pair of its own (SCM_RIGHTS), and takes
it back only while a request uses it (native/init/init_entry.c): a stopped child holds copies of that socket
pair, none of the pipe. A pty exec's child whose exec() gave up is hung up with its terminal as well."""

import threading

import pytest

from pysandbox import bounds

from ._red12_spinner import catch_stopped_child

pytestmark = pytest.mark.rootless


def _ends_within(sb, seconds):
    done = []
    waiter = threading.Thread(target=lambda: done.append(sb.wait(raise_on_termination=False)), daemon=True)
    waiter.start()
    waiter.join(seconds)
    return bool(done)


def _entrypoint_reading_stdin(sandboxes, monkeypatch):
    monkeypatch.setenv(bounds.variable("init_reply_s"), "10")
    sb = sandboxes("cat", timeout=600)
    sb.stdin.write("hi\n")
    sb.stdin.drain()
    return sb


def test_write_eof_ends_the_entrypoints_input(sandboxes, monkeypatch):
    # The property: once write_eof() returned, `cat` reads its end of file and the sandbox ends.
    sb = _entrypoint_reading_stdin(sandboxes, monkeypatch)
    assert sb.exec("true").wait() == 0
    sb.stdin.write_eof()
    sb.stdin.drain()
    assert _ends_within(sb, 30)
    assert sb.returncode == 0


def stopped_child_then_write_eof(sb, kind):
    """Sandbox code stops a fresh `kind` exec child before its exec, then write_eof(): asserts that the
    entrypoint reads its end of input, and lets the child go either way."""
    started, caught = catch_stopped_child(sb, kind)
    sb.stdin.write_eof()
    sb.stdin.drain()
    try:
        assert _ends_within(sb, 30), "the entrypoint never read the end of its input"
    finally:
        if sb.poll() is None:  # the cause: letting the child go ends the entrypoint's input at once
            sb.exec("kill", "-CONT", *caught).wait()
            assert _ends_within(sb, 30)
            for process in started:
                process.wait()


@pytest.mark.parametrize("kind", ["pipe", "pty"])
def test_a_stopped_exec_child_does_not_hold_back_the_entrypoints_end_of_input(sandboxes, monkeypatch, kind):
    stopped_child_then_write_eof(_entrypoint_reading_stdin(sandboxes, monkeypatch), kind)
