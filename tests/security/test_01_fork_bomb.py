"""Matrix 1: a fork bomb stays inside the sandbox's pids limit (default on).

As root (and on any host with a writable pids cgroup) the limit is the cgroup's
pids.max: the kernel refuses the fork that would pass it (pids.events `max`).
Unprivileged on a cgroup v1 host it is RLIMIT_NPROC, counted per host uid: the
sandbox may add the limit to what its uid already runs. Either way the bomb
ends with the sandbox and the host can still fork.
"""

import subprocess
import time

import psutil
import pytest

import pysandbox as modal
from pysandbox import config, registry
from pysandbox.exception import InvalidError
from pysandbox.resources import DEFAULT_PIDS_LIMIT
from pysandbox.runtime import cgroups, limits

pytestmark = pytest.mark.rootless

BOMB = "bomb() { bomb | bomb & }; bomb; sleep 600"


def sandbox_processes(sb):
    try:
        return psutil.Process(sb._record.supervisor.pid).children(recursive=True)
    except psutil.Error:
        return []


def test_fork_bomb_is_contained_by_the_default_pids_limit(sandboxes):
    uid_processes_before = limits.processes_of(config.sandbox_owner()[0])
    sb = sandboxes()
    cgroup = cgroups.load(registry.sandbox_dir(sb.object_id))
    pids_cgroup = cgroup is not None and "pids" in cgroup.dirs
    bound = DEFAULT_PIDS_LIMIT if pids_cgroup else DEFAULT_PIDS_LIMIT + uid_processes_before
    sb.exec("bash", "-c", BOMB)
    deadline = time.monotonic() + 120
    while True:  # the bomb grows until the kernel stops it
        count = sb.stats().pids if pids_cgroup else len(sandbox_processes(sb))
        assert count <= bound
        if count >= DEFAULT_PIDS_LIMIT * 0.9:
            break
        assert time.monotonic() < deadline, f"the bomb only reached {count} processes"
        time.sleep(0.2)
    time.sleep(1)  # it keeps trying: the count must stay at the limit
    if pids_cgroup:
        assert sb.stats().pids <= DEFAULT_PIDS_LIMIT
        refused = cgroups.read_number(cgroup.dirs["pids"] + "/pids.events", "max")
        assert refused > 0  # forks were refused by pids.max
        assert sb.poll() is None  # the sandbox's init survives the bomb
    else:
        assert len(sandbox_processes(sb)) <= bound
    sb.terminate(wait=True)
    assert sandbox_processes(sb) == []  # the whole bomb died with the sandbox
    assert subprocess.run(["true"]).returncode == 0  # the host can still fork


@pytest.mark.parametrize("value", ["0", "2"])
def test_a_pids_limit_below_what_a_sandbox_needs_is_refused(app, monkeypatch, value):
    """The limit-0 edge: never read as "unlimited", never a sandbox that cannot start."""
    monkeypatch.setenv("PYSANDBOX_PIDS_LIMIT", value)
    with pytest.raises(InvalidError, match="at least 3"):
        modal.Sandbox.create(app=app)
