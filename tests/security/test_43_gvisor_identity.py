"""Item 43: who gVisor's processes are on the host, and what of the caller's they reach.

For an unprivileged caller runsc runs as root of the sandbox's user namespace (runtime/gvisor.py): the caller
itself on the host, as sandbox root is under every runner. So what must hold, root or not:

* The Sentry, which runs sandbox code's system calls, is an id of the sandbox's range (its user namespace's
  nobody), never the caller and never host root: a Sentry taken over can signal or ptrace none of the
  caller's processes. Its gofer is the sandbox identity's root (the caller, rootless), runsc the caller.
* Nothing of the caller's state directory is reachable from inside: not runsc's state (--root), its bundle,
  the stage the root is mounted in, the supervisor's log; writing to those paths inside changes nothing on
  the host.
* A creator killed anywhere in create leaves no runsc, gofer or Sentry behind (the supervisor ends the
  runner when the creator never confirms; runsc's processes die with it), as under the other runners (test_20).
"""

import os
import signal
import time

import psutil
import pytest

import pysandbox as modal
from pysandbox import garbage, identity
from pysandbox._state import paths
from pysandbox.runtime import gvisor

from ..hoststate import host_id, sandbox_dirs
from ._inside import sh
from ._statedir import python, stray_sandbox_processes

pytestmark = [pytest.mark.gvisor(only=True), pytest.mark.rootless]  # its sandboxes are the gvisor runner's


def test_the_sentry_is_an_id_of_the_sandboxs_range_never_the_caller(sandboxes):
    sb = sandboxes("sleep", "300", block_network=True)  # no network helpers among the supervisor's children
    assert sb.exec("true").wait() == 0
    processes = psutil.Process(sb._record.supervisor.pid).children(recursive=True)
    named = [(os.path.basename((proc.cmdline() or [""])[0]), proc.uids()) for proc in processes]
    runsc = {name: ids for name, ids in named if name in ("runsc", "runsc-gofer")}
    sentry = {ids for name, ids in named if name not in runsc}  # the Sentry (runsc-sandbox) and its stubs
    assert set(runsc) == {"runsc", "runsc-gofer"} and len(sentry) == 1, processes
    (sentry_ids,) = sentry
    assert len(set(sentry_ids)) == 1 and sentry_ids.real not in (0, os.geteuid()), sentry_ids
    if os.geteuid() != 0:  # the sandbox namespace's nobody; root's runsc maps its Sentry to the host's
        assert sentry_ids.real == host_id(identity.current().uids, 65534)
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


CREATE_ONE = """
import pysandbox as modal
app = modal.App.lookup("gvisor-creator", create_if_missing=True)
print("ready", flush=True)
sb = modal.Sandbox.create("sleep", "300", app=app, block_network=True, timeout=300)
print(sb.object_id, flush=True)
import time; time.sleep(60)
"""


def test_a_creator_killed_mid_create_leaves_no_gvisor_process():
    for delay in (0.0, 0.05, 0.1, 0.2, 0.4, 1.0):  # before, during and after runsc starts (about 0.3 s here)
        before = sandbox_dirs()
        proc = python(CREATE_ONE, stdout=-1, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        new = {entry for entry in sandbox_dirs() - before if entry.startswith("sb-")}
        deadline = time.time() + 60
        for entry in new:
            try:
                modal.Sandbox.from_id(entry).terminate(wait=True)  # it appeared: a sandbox like any other
            except modal.exception.NotFoundError:  # it never did: its supervisor tears it down, gc the rest
                while entry not in garbage.collect().sandboxes:
                    assert time.time() < deadline, f"{entry} never became collectable"
                    time.sleep(0.05)
        assert not stray_sandbox_processes(new), f"killed after {delay} s"
