"""Red team (red15): a warm spare's user namespace lost the RLIMIT_NPROC fallback's host-wide bound.

Where no pids cgroup can be made (an unprivileged caller without a delegated pids controller), the pids
limit is RLIMIT_NPROC (runtime/limits.py): `pids_limit` on top of the processes the host uid already runs.
The kernel keeps a user namespace's RLIMIT_NPROC of its creator and applies it to the count of the whole
host uid (ucounts, Linux 5.14+); the supervisor's runner child sets the limit before it makes the sandbox's
user namespaces, so that is what bounds the sandbox. A spare (native/supervisor/spare.c) made those
namespaces before any claim, under its creator's limit: in a sandbox it started, only the count inside
the sandbox's own namespace met the limit, so sandbox code could run `pids_limit` plus as many processes
as the whole host uid ran when it was made (every other sandbox's root processes included, for an
unprivileged caller) rather than `pids_limit`. Run it as the unprivileged user:
PYSANDBOX_ROOTLESS_TAG=x bash .ci/rootless tests/security/test_65_red15_spare_nproc.py"""

import subprocess

import pytest

from pysandbox import settings
from pysandbox._state import paths
from pysandbox.runtime import cgroups, launch, spare

from .test_64_spare_claims import identity_options

pytestmark = pytest.mark.rootless

PIDS_LIMIT = 32  # room for a sandbox's start beside the next spare's (its makers count against the uid too)
HOST_PROCESSES = 60  # of the caller's uid, besides the sandbox: what the fallback's limit adds
# Other processes of the uid that end meanwhile (a spare's makers, a torn-down sandbox's) leave the sandbox
# their room: the fallback bounds the uid's whole count, not the sandbox's (tests/security/test_01).
SLACK = 16

FORK_ALL = """
import os, signal, time
kids = []
for _ in range(400):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
print(len(kids), flush=True)
for pid in kids:
    os.kill(pid, signal.SIGKILL)
"""


def test_a_spare_made_sandbox_keeps_its_pids_limit_without_a_pids_cgroup(sandboxes, runner, monkeypatch):
    if runner == "gvisor":
        pytest.skip("gVisor's sandbox processes are the Sentry's threads")
    monkeypatch.setenv("PYSANDBOX_PIDS_LIMIT", str(PIDS_LIMIT))
    monkeypatch.delenv("PYSANDBOX_WARM_SPARE", raising=False)
    first = sandboxes()
    cgroup = cgroups.load(paths.sandbox_dir(first.object_id))
    if cgroup is not None and "pids" in cgroup.dirs:
        pytest.skip("a pids cgroup bounds the sandbox: no RLIMIT_NPROC fallback here")
    if spare._waiting is None:  # one waits all the same
        spare.start(settings.native_binary("sandbox-supervisor"), identity_options(), launch.SUPERVISOR_SIGNALS)
    waiting = spare._waiting
    assert waiting is not None
    host = [subprocess.Popen(["sleep", "120"]) for _ in range(HOST_PROCESSES)]
    try:
        sb = sandboxes()
        assert sb._record.supervisor.pid == waiting.pid  # the spare's
        p = sb.exec("python3", "-c", FORK_ALL)
        forked = int(p.stdout.read().strip() or 0)
        p.wait()
    finally:
        for process in host:
            process.kill()
            process.wait()
    # init, the exec's python and the forks: at most the limit (bwrap and init count too), give or take
    # what ended meanwhile; not the host uid's processes on top of it.
    assert forked <= PIDS_LIMIT + SLACK, f"{forked} processes forked in a sandbox limited to {PIDS_LIMIT}"
