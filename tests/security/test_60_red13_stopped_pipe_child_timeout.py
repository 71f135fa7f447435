"""Red team (red13), a guard that holds: a pipe exec's child that sandbox code stops before its exec still
ends at its exec timeout, and terminate() takes it with the sandbox.

Since cd5c66c a pipe exec's child is forked and left to itself (native/init/spawn.c, fork_child, `detached`),
so a child stopped between its fork and its setsid leads no process group: init's timer kills the group and the
child itself (init_exec.c, run_timers), and the exec's wait() returns the timeout's code (-1) instead of
waiting until the sandbox ends. test_58 checks a pty exec's stopped child serves no longer than its own exec;
this checks the pipe exec's timeout, and that such a child does not outlive terminate() (the `sandboxes`
checked here, its exec's handle kept). Checked: bubblewrap and nsjail, root and rootless.
Not a finding."""

import time

import psutil
import pytest

from pysandbox import bounds
from pysandbox.container_process import EXEC_TIMEOUT_RETURNCODE

from ._red12_spinner import SPINNER
from .test_58_red11b_init_frozen_by_a_stopped_child import LONG_PATH

pytestmark = pytest.mark.rootless


def _catch(sb, **exec_kwargs):
    """Execs of `true` with a long PATH search until the spinner stopped one's child before its exec: the
    handles still running and the stopped pid."""
    spinner = sb.exec("python3", "-S", "-c", SPINNER, "pipe")
    started, deadline = [], time.monotonic() + 60
    while spinner.poll() is None and time.monotonic() < deadline:
        started = [p for p in started if p.poll() is None]
        if len(started) < 16:
            started.append(sb.exec("true", env={"PATH": LONG_PATH}, **exec_kwargs))
        else:
            time.sleep(0.01)
    assert spinner.wait() == 0, "the spinner never caught a pipe exec's child before its exec"
    return started, spinner.stdout.read().split()[-1]


def test_a_stopped_pipe_child_ends_at_its_exec_timeout_and_with_the_sandbox(sb, monkeypatch):
    monkeypatch.setenv(bounds.variable("init_reply_s"), "10")
    started, caught = _catch(sb, timeout=20)
    codes = [p.wait() for p in started]
    assert EXEC_TIMEOUT_RETURNCODE in codes and set(codes) <= {0, EXEC_TIMEOUT_RETURNCODE}, codes
    assert sb.exec("sh", "-c", f"test -e /proc/{caught}").wait() != 0, f"{caught} outlived its exec's timeout"
    # One more left stopped, its exec's handle kept: terminate() takes it with the sandbox.
    _held, caught = _catch(sb)
    stat = sb.exec("cat", f"/proc/{caught}/stat").stdout.read()
    assert stat.split()[2] == "T", stat
    descendants = psutil.Process(sb._record.supervisor.pid).children(recursive=True)
    sb.terminate()
    sb.wait(raise_on_termination=False)
    assert not [p for p in descendants if _alive(p)], "a process of the sandbox survived terminate()"


def _alive(process):
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
