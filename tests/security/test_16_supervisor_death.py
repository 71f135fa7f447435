"""Item 16: killing the supervisor with SIGKILL kills every sandbox process
(bwrap --die-with-parent, init's parent-death signal); the sandbox reads as terminated,
and whoever waits for it does the rest of the teardown and records it."""

import contextlib
import os
import signal
import subprocess
import time

import psutil
import pytest

from pysandbox._state import paths
from pysandbox.runtime import gvisor

pytestmark = pytest.mark.rootless


@pytest.mark.gvisor
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


@pytest.mark.parametrize("stand_in", ["bwrap", "runsc-gofer"])
def test_a_runner_child_stranded_mid_setup_is_killed_by_whoever_waits(sandboxes, stand_in):
    # Killed while bwrap was still setting up, the supervisor can leave bwrap's child
    # blocked on a bwrap that is gone, outside any --die-with-parent. It keeps bwrap's
    # command line, which names the sandbox; whoever waits for or ends the lost sandbox (or gc)
    # kills it. Reading (poll, list) does not: reads never act. The stand-in forks a `sleep` of its
    # own, killed with its process group at the end, so the test leaves no process behind.
    # runsc's processes (the gvisor runner) name the sandbox by their state directory (gvisor.runsc_root).
    sb = sandboxes("sleep", "100")
    names = ["--sandbox", sb.object_id] if stand_in == "bwrap" else \
        [f"--root={gvisor.runsc_root(str(paths.sandbox_dir(sb.object_id)))}", "gofer"]
    stray = subprocess.Popen([stand_in, "-c", "sleep 600; :", "sh", *names], executable="/bin/sh",
                             start_new_session=True)
    _until_exec_done(stray.pid, stand_in)
    supervisor = psutil.Process(sb._record.supervisor.pid)
    supervisor.kill()
    supervisor.wait(10)
    try:
        assert sb.poll() == 137 and stray.poll() is None
        sb.wait(raise_on_termination=False)
        try:
            assert stray.wait(timeout=30) == -signal.SIGKILL
        except subprocess.TimeoutExpired:
            with open(f"/proc/{stray.pid}/cmdline", "rb") as f:
                cmdline = f.read()
            pytest.fail(f"the stand-in survived the repair: status {sb._exit!r} (lost: {sb._exit.lost}), "
                        f"its command line {cmdline!r}, the sandbox's files {os.listdir(paths.sandbox_dir(sb.object_id))}")
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed before it started its sleep: nothing left
            os.killpg(stray.pid, signal.SIGKILL)  # the stand-in and its sleep
        stray.wait()


def _until_exec_done(pid, program):
    """Until the process's command line reads as `program`'s. Popen returns once the child's
    close-on-exec descriptors closed, which the kernel does before it sets up the new command
    line: until then /proc/<pid>/cmdline reads empty, and no scan can know the stand-in (on a
    busy machine that window lasted past the repair once). A real stranded runner child is a
    fork of the runner, whose command line it has from its first instant."""
    for _ in range(1000):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read().split(b"\0", 1)[0] == program.encode():
                return
        time.sleep(0.01)
    pytest.fail(f"the stand-in {pid} never showed its command line")
