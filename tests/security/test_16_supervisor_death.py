"""Item 16: killing the supervisor with SIGKILL kills every sandbox process
(bwrap --die-with-parent, init's parent-death signal) and the record says so."""

import os
import signal

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
