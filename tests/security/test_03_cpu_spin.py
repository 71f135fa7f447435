"""Matrix 3: a CPU spin is ended at the timeout.

A sandbox's timeout ends it with status TIMEOUT: returncode and poll() 124 and
wait() raises SandboxTimeoutError (Modal's mapping). An exec's timeout kills the
process and its wait() returns -1; the sandbox lives on. Nothing keeps spinning.
With cpu=(request, limit) the spin is throttled to the limit meanwhile.
"""

import json

import psutil
import pytest

from pysandbox._state import paths
from pysandbox.exception import SandboxTimeoutError
from pysandbox.runtime import cgroups
from pysandbox.runtime.cgroups._common import read_number

pytestmark = pytest.mark.rootless

SPIN = "while True: pass"


def spinning(sb):
    try:
        return [p for p in psutil.Process(sb._record.supervisor.pid).children(recursive=True) if p.name() == "python3"]
    except psutil.Error:
        return []


@pytest.mark.gvisor
def test_a_spinning_sandbox_ends_at_its_timeout_with_124(sandboxes):
    cpu = (0.25, 0.5) if cgroups.host().has("cpu") else None
    sb = sandboxes("python3", "-c", SPIN, timeout=2, cpu=cpu)
    with pytest.raises(SandboxTimeoutError):
        sb.wait()
    assert sb.returncode == 124 and sb.poll() == 124
    assert spinning(sb) == []
    exit_record = json.loads((paths.sandbox_dir(sb.object_id) / "exit").read_text())
    assert exit_record["status"] == "timeout"
    if cpu is not None:
        assert exit_record["cpu_seconds"] > 0  # it did spin, and the time was counted


@pytest.mark.gvisor
def test_a_spinning_exec_ends_at_its_timeout_with_minus_1(sandboxes):
    sb = sandboxes()
    p = sb.exec("python3", "-c", SPIN, timeout=1)
    assert p.wait() == -1
    assert spinning(sb) == []
    assert sb.poll() is None
    assert sb.exec("echo", "ok").stdout.read() == "ok\n"


@pytest.mark.gvisor
def test_a_cpu_limit_throttles_the_spin(sandboxes):
    if not cgroups.host().has("cpu"):
        pytest.skip("no writable cpu cgroup here")
    sb = sandboxes(cpu=(0.1, 0.1))
    p = sb.exec("python3", "-c", SPIN, timeout=1)
    assert p.wait() == -1
    cpu_dir = cgroups.load(paths.sandbox_dir(sb.object_id)).dirs["cpu"]
    assert read_number(cpu_dir + "/cpu.stat", "nr_throttled") > 0
