"""Red team (red11b): sandbox code stops init's child before it execs, and init, and every host call waiting on
it, waited for good.

init started a pty exec in a forked child and read, blocking, the close-on-exec pipe on which the child said
its error. Since db2c65d the pty child searches the whole of PATH itself (an execve per entry), so that window
lasts as long as the PATH the exec runs with is (the image's ENV, the caller's env). Sandbox code runs as the
same uid as init's children and may signal them: a process that SIGSTOPs every child of pid 1 still running
init's program (comm "init": not yet exec'd) froze init (seen: init in anon_pipe_read, its child in
do_signal_stop), and with it every later call of the sandbox. Only the sandbox's own use was denied
(terminate() goes through the supervisor), hence low to medium: a host serving many sandboxes from a thread
pool lost a worker per frozen call.

Fixed on both sides: the host's wait for init's reply is bounded (agent.reply_to, PYSANDBOX_INIT_REPLY_TIMEOUT),
and init no longer waits on an exec's child (native/init/spawn.c): the child says itself why it failed to start
and exits with the shell's code, and init learns of its exec from a close-on-exec pipe among those it polls,
answering STARTED then. A stopped child stalls only its own exec: that exec() raises TimeoutError after the
host's bound. A pipe exec's child (posix_spawn, vfork semantics) held init until its exec as well (red12:
tests/security/test_59_red12_pipe_spawn_child_freezes_init); it is started the same way now."""

import pytest

from pysandbox import bounds

from ._inside import start_while
from ._red12_spinner import LONG_PATH

pytestmark = pytest.mark.rootless

# Children of pid 1 still running init's program in a session of their own (a pty exec's child, between its
# setsid and its exec; not a relay, which stays in init's session): stopped, each pid printed, until one is seen
# stopped (the exec may win the race); then the stopper ends, so that it never catches a process the test
# starts afterwards. The last pid printed is the stopped one.
STOPPER = r"""
while :; do
  for s in /proc/[0-9]*/stat; do
    read -r pid comm state ppid pgrp session rest < "$s" 2>/dev/null || continue
    [ "$ppid" = 1 ] && [ "$comm" = "(init)" ] && [ "$session" = "$pid" ] && kill -STOP "$pid" 2>/dev/null || continue
    echo "$pid"
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      read -r pid comm state rest < "$s" 2>/dev/null || break
      if [ "$comm" = "(init)" ] && [ "$state" = T ]; then exit 0; fi
    done
  done
done
"""
def stalls_only_its_own_exec(sb, caught, started):
    """What a child stopped before its exec (`caught`, pids, seen stopped) may deny: only its own exec, whose
    exec() call start_while saw time out. init serves the sandbox meanwhile: a pipe exec, a file write and read,
    a pty exec. Let go, the child exec's `true` after the rest of its search and ends (a pty child may have
    ended already: the host's end of its terminal closed when its exec() gave up, a hang-up)."""
    assert sb.exec("echo", "served").stdout.read() == "served\n"
    sb.filesystem.write_text("served", "/tmp/served")
    assert sb.filesystem.read_text("/tmp/served") == "served"
    p = sb.exec("sh", "-c", "echo pty-served", pty=True)
    assert p.wait() == 0 and "pty-served" in p.stdout.read()
    sb.exec("sh", "-c", f"kill -CONT {' '.join(caught)} 2>/dev/null").wait()
    gone = " && ".join(f"! [ -e /proc/{pid} ]" for pid in caught)
    assert sb.exec("sh", "-c", f"until {gone}; do sleep 0.01; done", timeout=30).wait() == 0
    for process in started:
        assert process.wait() == 0


def test_a_stopped_pty_child_stalls_only_its_own_exec(sb, monkeypatch):
    # The caught exec's exec() times out after this bound (its STARTED waits for the exec); no other call may.
    monkeypatch.setenv(bounds.variable("init_reply_s"), "5")
    stopper = sb.exec("sh", "-c", STOPPER)
    started = start_while(lambda: stopper.poll() is None, lambda: sb.exec("true", pty=True, env={"PATH": LONG_PATH}))
    assert stopper.wait() == 0, "the stopper never caught a child of init before its exec"
    stalls_only_its_own_exec(sb, stopper.stdout.read().split(), started)


def test_a_pty_exec_that_cannot_start_says_why_and_exits_as_a_shell_would(sb):
    # Its child reports the failure now, not init: the same line and code as a pipe exec's.
    for pty in (False, True):
        p = sb.exec("no-such-program-4f1c", pty=pty)
        assert p.wait() == 127
        assert "pysandbox: exec: no-such-program-4f1c: No such file or directory" in (
            p.stdout.read() if pty else p.stderr.read())
