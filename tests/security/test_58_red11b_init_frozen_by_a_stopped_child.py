"""Red team (red11b): sandbox code stops init's child before it execs, and init, and every host call waiting on
it, waited for good. Fixed on the host's side: its wait for init's reply is bounded (agent.reply_to).

init starts a process in a child and waits until it has exec'd: in posix_spawn (vfork semantics) for a pipe
exec, and for a pty exec (native/init/spawn.c, fork_with_terminal) in a read of the close-on-exec pipe on which
the child says its error. Since db2c65d the pty child searches the whole of PATH itself (an execve per entry),
so that window lasts as long as the PATH the exec runs with is (the image's ENV, the caller's env). Sandbox code
runs as the same uid as init's children and may signal them: a process that SIGSTOPs every child of pid 1 still
running init's program (comm "init": not yet exec'd) freezes init (seen: init in anon_pipe_read, its child in
do_signal_stop; a pipe exec's vfork child too, at times: its window is short, so only the pty's is tested).
The host's call reads init's reply with no bound in time (agent.call, initclient._call): exec() never returns,
nor does any later call that needs init, though the trust boundary says every read from the sandbox is bounded
in time. Only the sandbox's own use is denied (terminate()
goes through the supervisor and works), hence low to medium: a host serving many sandboxes from a thread pool
loses a worker per frozen call for good.

Fix: bound the host's wait for init's reply (a deadline on agent.call/receive, an error saying init did not
answer), and have init not block on a child sandbox code can stop: start it with clone3(CLONE_PIDFD) without
vfork semantics and learn of its exec or error from its loop (the close-on-exec pipe polled, not read blocking),
so that a stopped child stalls only its own exec."""

import threading

import pytest

from pysandbox import bounds
from pysandbox.exception import TimeoutError

pytestmark = pytest.mark.rootless

# Every child of pid 1 still running init's program (between its fork and its exec): stopped.
STOPPER = r"""
while :; do
  for s in /proc/[0-9]*/stat; do
    read -r pid comm state ppid rest < "$s" 2>/dev/null || continue
    if [ "$ppid" = 1 ] && [ "$comm" = "(init)" ]; then kill -STOP "$pid" 2>/dev/null; fi
  done
done
"""
LONG_PATH = ":".join(["/nonexistent"] * 20000 + ["/usr/bin", "/bin"])  # a pty child's long search: a wide window


def test_a_stopped_child_of_init_does_not_hang_the_hosts_pty_exec(sb, monkeypatch):
    # The host's wait for init's reply is bounded (PYSANDBOX_INIT_REPLY_TIMEOUT): an exec init cannot answer
    # is a TimeoutError naming the setting. (init itself still waits for the stopped child: the sandbox's
    # code denies only its own sandbox's calls, docs/SECURITY.md.)
    monkeypatch.setenv(bounds.variable("init_reply_s"), "3")
    sb.exec("sh", "-c", STOPPER)
    done, answers = threading.Event(), []

    def run():  # until the stopper catches a child: it needs a scan of /proc to start
        for _ in range(100):
            try:
                sb.exec("true", pty=True, env={"PATH": LONG_PATH}).wait()
            except Exception as exc:  # an error is an answer: only a hang fails
                answers.append(exc)
                if isinstance(exc, TimeoutError):
                    break
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(60), "an exec() still waits for init, frozen in its wait for a stopped child"
    timeouts = [exc for exc in answers if isinstance(exc, TimeoutError)]
    assert all(bounds.variable("init_reply_s") in str(exc) for exc in timeouts), timeouts
