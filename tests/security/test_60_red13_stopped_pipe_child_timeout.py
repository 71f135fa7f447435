"""Red team (red13), a guard that holds: a pipe exec's child that sandbox code stops before its exec still
ends at its exec timeout, and terminate() takes it with the sandbox.

A pipe exec's child is forked (native/init/spawn.c, fork_child), so a child stopped between its fork and its
setsid leads no process group: init's timer kills the group and the child itself (init_exec.c, run_timers), and
the exec ends with the timeout's code (-1) instead of waiting until the sandbox ends; its exec() call returns
then (init reports the start once the child exec'd or ended). test_58 checks a pty exec's stopped child stalls
no more than its own exec; this checks the pipe exec's timeout, and that such a child, whose exec() gave up,
does not outlive terminate(). Checked: bubblewrap and nsjail, root and rootless.
Not a finding."""

import psutil
import pytest

from pysandbox import bounds
from pysandbox.container_process import EXEC_TIMEOUT_RETURNCODE

from ..procs import alive
from ._red12_spinner import catch_stopped_child

pytestmark = pytest.mark.rootless


def test_a_stopped_pipe_child_ends_at_its_exec_timeout_and_with_the_sandbox(sb, monkeypatch):
    # The caught exec's start is reported when its timeout ends it: within this bound.
    monkeypatch.setenv(bounds.variable("init_reply_s"), "30")
    started, caught = catch_stopped_child(sb, "pipe", timeout=3)
    caught = caught[-1]
    codes = [p.wait() for p in started]
    assert EXEC_TIMEOUT_RETURNCODE in codes and set(codes) <= {0, EXEC_TIMEOUT_RETURNCODE}, codes
    assert sb.exec("sh", "-c", f"test -e /proc/{caught}").wait() != 0, f"{caught} outlived its exec's timeout"
    # One more left stopped, its exec() given up after this bound: terminate() takes it with the sandbox.
    monkeypatch.setenv(bounds.variable("init_reply_s"), "3")
    _held, caught = catch_stopped_child(sb, "pipe")
    caught = caught[-1]
    stat = sb.exec("cat", f"/proc/{caught}/stat").stdout.read()
    assert stat.split()[2] == "T", stat
    descendants = psutil.Process(sb._record.supervisor.pid).children(recursive=True)
    sb.terminate()
    sb.wait(raise_on_termination=False)
    assert not [p for p in descendants if alive(p)], "a process of the sandbox survived terminate()"
