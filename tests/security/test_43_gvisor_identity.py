"""Item 43: who gVisor's processes are on the host, and what of the caller's they reach.

For an unprivileged caller runsc runs as root of the sandbox's user namespace (runtime/gvisor.py): the caller
itself on the host, as sandbox root is under every runner. So what must hold, root or not:

* The Sentry, which runs sandbox code's system calls, is an id of the sandbox's range (its user namespace's
  nobody), never the caller and never host root: a Sentry taken over can signal or ptrace none of the
  caller's processes. Its gofer is the sandbox identity's root (the caller, rootless), runsc the caller.
* Nothing of the caller's state directory is reachable from inside: not runsc's state (--root), its bundle,
  the stage the root is mounted in, the supervisor's log; writing to those paths inside changes nothing on
  the host.
"""

import os

import psutil
import pytest

from pysandbox import identity
from pysandbox._state import paths
from pysandbox.runtime import gvisor

from ._inside import sh

pytestmark = [pytest.mark.gvisor(only=True), pytest.mark.rootless]  # its sandboxes are the gvisor runner's


def _host_id(ranges, inside: int) -> int:
    return next(outside + inside - first for first, outside, count in ranges if first <= inside < first + count)


def test_the_sentry_is_an_id_of_the_sandboxs_range_never_the_caller(sandboxes):
    sb = sandboxes("sleep", "300")
    assert sb.exec("true").wait() == 0
    processes = psutil.Process(sb._record.supervisor.pid).children(recursive=True)
    named = [(os.path.basename((proc.cmdline() or [""])[0]), proc.uids()) for proc in processes]
    runsc = {name: ids for name, ids in named if name in ("runsc", "runsc-gofer")}
    sentry = {ids for name, ids in named if name not in runsc}  # the Sentry (runsc-sandbox) and its stubs
    assert set(runsc) == {"runsc", "runsc-gofer"} and len(sentry) == 1, processes
    (sentry_ids,) = sentry
    assert len(set(sentry_ids)) == 1 and sentry_ids.real not in (0, os.geteuid()), sentry_ids
    if os.geteuid() != 0:  # the sandbox namespace's nobody; root's runsc maps its Sentry to the host's
        assert sentry_ids.real == _host_id(identity.current().uids, 65534)
    assert runsc["runsc"].real == os.geteuid() and runsc["runsc-gofer"].real == identity.current().owner[0], runsc


def test_the_callers_state_directory_is_out_of_reach(sandboxes):
    sb = sandboxes("sleep", "300")
    directory = paths.sandbox_dir(sb.object_id)
    home = directory.parent.parent
    places = [home, directory, gvisor.runsc_root(str(directory)), gvisor.rootless_stage(str(directory)),
              home / "gvisor-bundle"]
    code, out = sh(sb, " ; ".join(f"[ -e {place} ] && echo present {place}" for place in places))
    assert "present" not in out, out
    sh(sb, " ; ".join(f"mkdir -p {place}; echo x > {place}/planted" for place in places))
    assert not [place for place in places if os.path.lexists(f"{place}/planted")]
    assert sb.exec("cat", f"{places[2]}/planted").stdout.read() == "x\n"  # it wrote to its own tree only
