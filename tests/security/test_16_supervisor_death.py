"""Item 16: killing the supervisor with SIGKILL kills every sandbox process
(bwrap --die-with-parent, init's parent-death signal) and the record says so."""

import os
import signal
import subprocess

import psutil
import pytest


pytestmark = pytest.mark.rootless


def test_killing_supervisor_kills_sandbox(sandboxes):
    sb = sandboxes("sleep", "100")
    assert sb.exec("sleep", "100").poll() is None
    supervisor = psutil.Process(sb._record.supervisor.pid)
    inside = supervisor.children(recursive=True)
    assert len(inside) >= 4  # bwrap, init, the entrypoint, the exec'd sleep
    os.kill(supervisor.pid, signal.SIGKILL)
    gone, alive = psutil.wait_procs(inside, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 137


def test_a_runner_child_stranded_mid_setup_is_killed_by_whoever_notices(sandboxes):
    # Killed while bwrap was still setting up, the supervisor can leave bwrap's child
    # blocked on a bwrap that is gone, outside any --die-with-parent. It keeps bwrap's
    # command line, which names the sandbox; the first reader to notice the lost supervisor kills it.
    sb = sandboxes("sleep", "100")
    stray = subprocess.Popen(["bwrap", "-c", "sleep 600; :", "sh", "--sandbox", sb.object_id], executable="/bin/sh")
    supervisor = psutil.Process(sb._record.supervisor.pid)
    supervisor.kill()
    supervisor.wait(10)
    try:
        assert sb.poll() == 137
        assert stray.wait(timeout=30) == -signal.SIGKILL
    finally:
        stray.kill()
        stray.wait()
