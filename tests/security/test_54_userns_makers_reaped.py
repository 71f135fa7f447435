"""The sandbox's user namespaces are made by two processes of the supervisor's, running as
the sandbox's host ids outside its pid namespace (native/common/userns.h). The runner starts
without waiting for them to exit: the outer one is the supervisor's child and the inner one
its orphan, and the supervisor must reap both. One left running or a zombie would hold a pid
of the sandbox's cgroup and a host process of its ids for the sandbox's whole life."""

import time

import psutil
import pytest

pytestmark = pytest.mark.rootless

SUPERVISOR = "sandbox-supervisor"


def _makers(supervisor):
    """The supervisor's children that are forks of it (the runner execs) or unreaped."""
    found = []
    for child in supervisor.children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE or child.exe().endswith(SUPERVISOR):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_the_user_namespace_makers_do_not_outlive_the_create(sandboxes):
    sb = sandboxes(block_network=True)  # the default network's DNS filter is a fork of the supervisor too
    assert sb.exec("true").wait() == 0  # the runner is long past the namespaces
    supervisor = psutil.Process(sb._record.supervisor.pid)
    deadline = time.monotonic() + 30  # a bound for a loaded machine, not a timing assertion
    while _makers(supervisor) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _makers(supervisor) == []
    assert len(supervisor.children()) == 1  # the runner alone
