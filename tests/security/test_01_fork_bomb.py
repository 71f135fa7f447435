"""Matrix 1: a fork bomb stays inside the sandbox's pids limit (default on).

As root (and on any host with a writable pids cgroup) the limit is the cgroup's
pids.max: the kernel refuses the fork that would pass it (pids.events `max`).
Unprivileged on a cgroup v1 host it is RLIMIT_NPROC, counted per host uid: the
sandbox may add the limit to what its uid already runs (every process of the
sandbox carries that bound). Either way bash sees its forks refused, the bomb
ends with the sandbox and the host can still fork.
"""

import subprocess
import time

import psutil
import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox._state import paths
from pysandbox.exception import InvalidError
from pysandbox.resources import DEFAULT_PIDS_LIMIT
from pysandbox.runtime import cgroups, limits
from pysandbox.runtime.cgroups._common import read_number

pytestmark = pytest.mark.rootless

BOMB = "bomb() { bomb | bomb & }; bomb; sleep 600"


def sandbox_processes(sb):
    try:
        return psutil.Process(sb._record.supervisor.pid).children(recursive=True)
    except psutil.Error:
        return []


def test_fork_bomb_is_contained_by_the_default_pids_limit(sandboxes):
    uid = settings.sandbox_owner()[0]
    uid_processes_before = limits.processes_of(uid)
    sb = sandboxes()
    cgroup = cgroups.load(paths.sandbox_dir(sb.object_id))
    pids_cgroup = cgroup is not None and "pids" in cgroup.dirs
    if not pids_cgroup:  # the fallback: every process of the sandbox has the uid's bound
        soft, hard = sb.exec("sh", "-c", "grep 'Max processes' /proc/self/limits").stdout.read().split()[2:4]
        # The limit on top of what the uid ran when the sandbox was made (other processes of the
        # uid may have come or gone since `uid_processes_before`).
        running = max(uid_processes_before, limits.processes_of(uid))
        assert soft == hard and 0 < int(soft) - DEFAULT_PIDS_LIMIT <= running + 16
    bomb = sb.exec("bash", "-c", BOMB)
    deadline = time.monotonic() + 60
    while True:  # the bomb grows until the kernel stops it
        if pids_cgroup:
            count = sb.stats().pids
            assert count <= DEFAULT_PIDS_LIMIT
        else:
            # What RLIMIT_NPROC counts: every process of the host uid. A scan of /proc is not
            # atomic (the bomb's processes come and go during it), so it bounds nothing.
            count = limits.processes_of(uid) - uid_processes_before
        if count >= DEFAULT_PIDS_LIMIT * 0.9:
            break
        assert time.monotonic() < deadline, f"the bomb only reached {count} processes"
        time.sleep(0.05)
    time.sleep(1)  # it keeps trying: the count must stay at the limit
    if pids_cgroup:
        assert sb.stats().pids <= DEFAULT_PIDS_LIMIT
        refused = read_number(cgroup.dirs["pids"] + "/pids.events", "max")
        assert refused > 0  # forks were refused by pids.max
        assert sb.poll() is None  # the sandbox's init survives the bomb
    sb.terminate(wait=True)
    assert "fork: retry: Resource temporarily unavailable" in bomb.stderr.read()  # EAGAIN at the limit
    assert sandbox_processes(sb) == []  # the whole bomb died with the sandbox
    if not pids_cgroup:  # ... and none of it escaped the supervisor's tree
        deadline = time.monotonic() + 10
        while limits.processes_of(uid) > uid_processes_before + 10:
            assert time.monotonic() < deadline, "the bomb outlived its sandbox"
            time.sleep(0.1)
    assert subprocess.run(["true"]).returncode == 0  # the host can still fork


@pytest.mark.parametrize("value", ["0", "2"])
def test_a_pids_limit_below_what_a_sandbox_needs_is_refused(app, monkeypatch, value):
    """The limit-0 edge: never read as "unlimited", never a sandbox that cannot start."""
    monkeypatch.setenv("PYSANDBOX_PIDS_LIMIT", value)
    with pytest.raises(InvalidError, match="at least 3"):
        modal.Sandbox.create(app=app)
