"""Matrix 2: a memory hog is killed at the sandbox's memory limit, and the user is told.

An exec killed by the OOM killer returns 137 and `sb.stats().oom_kills` counts it;
the sandbox lives on. A sandbox whose entrypoint is killed so ends with 137, its
exit record counts the kills, and `pysandbox ls` says "exited 137 (out of memory)".
Without a writable cgroup (unprivileged on cgroup v1) a memory limit is refused
with the reason, never silently ignored.
"""

import json
import subprocess
import sys

import pytest

from pysandbox._state import paths
from pysandbox.exception import InvalidError
from pysandbox.runtime import cgroups

HOG = "x = bytearray(1 << 30); print('allocated')"  # 1 GiB, 16 times the limit
needs_memory_cgroup = pytest.mark.skipif(not cgroups.host().has("memory"), reason="no writable memory cgroup here")


@needs_memory_cgroup
def test_an_exec_hog_is_oom_killed_with_137_and_counted(sandboxes):
    sb = sandboxes(memory=(32, 64))
    hog = sb.exec("python3", "-c", HOG)
    assert hog.stdout.read() == ""
    assert hog.wait() == 137
    stats = sb.stats()
    assert stats.oom_kills == 1
    assert stats.memory_peak <= 64 << 20  # the host gave it no more than the limit
    assert sb.poll() is None  # the sandbox itself lives on
    assert sb.exec("echo", "ok").stdout.read() == "ok\n"


@needs_memory_cgroup
def test_an_entrypoint_hog_ends_the_sandbox_with_the_reason(sandboxes):
    sb = sandboxes("python3", "-c", HOG, memory=(32, 64))
    sb.wait()  # an exit, not a termination: no exception, as on Modal
    assert sb.returncode == 137
    exit_record = json.loads((paths.sandbox_dir(sb.object_id) / "exit").read_text())
    assert (exit_record["status"], exit_record["code"], exit_record["oom_kills"]) == ("exited", 137, 1)
    assert sb.stats().oom_kills == 1
    ls = subprocess.run([sys.executable, "-m", "pysandbox", "ls", "--all"], capture_output=True, text=True, check=True)
    row = next(line for line in ls.stdout.splitlines() if line.startswith(sb.object_id))
    assert "exited 137 (out of memory)" in row


@pytest.mark.rootless
def test_a_memory_limit_without_a_writable_cgroup_is_refused_with_the_reason(app):
    if cgroups.host().has("memory"):
        pytest.skip("this host has a writable memory cgroup: the hog tests above cover it")
    import pysandbox as modal

    with pytest.raises(InvalidError, match="memory= needs a writable cgroup.*Delegate=yes"):
        modal.Sandbox.create("python3", "-c", HOG, app=app, memory=(32, 64))
