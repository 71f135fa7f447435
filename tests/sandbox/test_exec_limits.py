"""Issue 12, item 6: how many execs a sandbox runs at once, and the errors at each limit.

init raises its soft RLIMIT_NOFILE to the hard one it inherits, so the caller's usual
soft 1024 no longer caps a sandbox near 1,015 execs; past its exec slots (16,384, fewer
under a low hard limit), its pids limit, or this process's own fd limit, exec raises
ResourceExhaustedError naming the limit, and nothing leaks. Sandbox code gets that limit
less a margin, soft and hard (native/init/spawn.c, children_nofile: room for init's own
descriptors in flight, tests/security/test_61_red13b_*).
"""

import gc
import os
import resource
import subprocess
import sys

import pytest

import pysandbox as modal
from pysandbox.exception import ResourceExhaustedError

pytestmark = pytest.mark.rootless

QUIET = {"stdout": modal.StreamType.DEVNULL, "stderr": modal.StreamType.DEVNULL}
CREATE = "import pysandbox as m; print(m.Sandbox.create(app=m.App.lookup('pysandbox-tests')).object_id)"


NOFILE_MARGIN = 512  # native/init/spawn.c


def sandbox_code_fd_limit(hard):
    return hard - NOFILE_MARGIN if hard > 2 * NOFILE_MARGIN else hard // 2


def test_sandbox_processes_get_the_hard_fd_limit_less_inits_margin(sandboxes):
    sb = sandboxes("sleep", "300")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = str(sandbox_code_fd_limit(hard))
    for pty in (False, True):  # the pipe and pty execs' children, and the entrypoint's
        out = sb.exec("sh", "-c", "ulimit -Sn; ulimit -Hn", pty=pty).stdout.read().split()
        assert out == [expected, expected], (pty, out, soft, hard)
    entry = sb.exec("sh", "-c", "grep 'open files' /proc/$(pgrep -o -x sleep)/limits").stdout.read().split()
    assert entry[3:5] == [expected, expected], entry


@pytest.fixture
def sandbox_of_a_creator_with_hard_fd_limit(app):
    """A sandbox created by a process whose hard RLIMIT_NOFILE is 200: its init inherits that."""

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    created = subprocess.run([sys.executable, "-c", CREATE], capture_output=True, text=True, check=True,
                             preexec_fn=limit)
    sb = modal.Sandbox.from_id(created.stdout.strip())
    yield sb
    sb.terminate(wait=True)


def test_exec_slots_follow_the_hard_fd_limit(sandbox_of_a_creator_with_hard_fd_limit):
    sb = sandbox_of_a_creator_with_hard_fd_limit
    gc.collect()  # what earlier tests left to the collector is not ours to count
    fds = len(os.listdir("/proc/self/fd"))
    running = [sb.exec("sleep", "600", **QUIET) for _ in range(200 - 64)]
    with pytest.raises(ResourceExhaustedError, match=r"136 execs.*RLIMIT_NOFILE 200") as refused:
        sb.exec("echo", "one more")
    assert "AgentError" not in repr(refused.value)
    del running[:5]  # dropping handles frees their slots
    assert sb.exec("echo", "ok").stdout.read() == "ok\n"
    del running[:]
    assert len(os.listdir("/proc/self/fd")) <= fds


def test_pids_limit_is_a_clear_error(app, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_PIDS_LIMIT", "32")
    sb = modal.Sandbox.create(app=app, block_network=True)  # no network helper to count against RLIMIT_NPROC
    try:
        running = []
        with pytest.raises(ResourceExhaustedError, match="PYSANDBOX_PIDS_LIMIT"):
            # RLIMIT_NPROC (the rootless fallback) counts the owner's other processes too, which come and go
            for _ in range(256):
                running.append(sb.exec("sleep", "600", **QUIET))
        assert running, "not even one exec started"
    finally:
        sb.terminate(wait=True)


def test_running_out_of_fds_here_is_a_clear_error(sb):
    sb.exec("true").wait()
    fds = len(os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (fds + 3, hard))  # room for a few fds, fewer than an exec takes
    try:
        with pytest.raises(ResourceExhaustedError, match="RLIMIT_NOFILE.*ulimit -n"):
            for _ in range(4):
                sb.exec("sleep", "600")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(os.listdir("/proc/self/fd")) == fds  # the failed attempt closed what it had opened
