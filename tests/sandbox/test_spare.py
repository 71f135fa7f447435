"""Warm spares (runtime/spare.py, native/supervisor/spare.h): after a create, a supervisor waits with
the next sandbox's user and network namespaces made, and the next create hands it its sandbox.

Every other behaviour test runs its second and later sandboxes through spares; these check the
spare's own life: it is taken once, for the identity and supervisor it was made for, and ends with
its creator, in a fork's child and when let go, and a create whose spare is gone still starts."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

import pysandbox as modal
from pysandbox._state import paths
from pysandbox.runtime import cgroups, launch, spare

from ..procs import eventually

pytestmark = pytest.mark.rootless

ROOT = Path(__file__).resolve().parents[2]


def ended(pid):
    """Gone, or a zombie (exited, not yet reaped)."""
    launch.reap_finished()
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def waiting_spare(sandboxes):
    """The spare waiting once a create has been made (it starts one)."""
    sandboxes()
    assert spare._waiting is not None
    return spare._waiting


def argv_of(pid):
    """A process's command line, once the kernel shows it: right after an exec, the new one is empty for a
    moment (the caller's posix_spawn returns before the kernel has set it)."""
    process = psutil.Process(pid)
    assert eventually(lambda: process.cmdline() != [])
    return process.cmdline()


def test_the_next_create_is_handed_to_the_spare(sandboxes):
    waiting = waiting_spare(sandboxes)
    sb = sandboxes()
    assert sb._record.supervisor.pid == waiting.pid
    assert spare._waiting is not None and spare._waiting.pid != waiting.pid  # the next create's
    # Its command line becomes the sandbox supervisor's (once it has read the claim): ps and the
    # registry's scans name the sandbox.
    named = ["--dir", str(paths.sandbox_dir(sb.object_id))]
    assert eventually(lambda: psutil.Process(waiting.pid).cmdline()[1:3] == named)
    assert sb.exec("sh", "-c", "echo ok").stdout.read() == "ok\n"


def test_each_sandbox_gets_namespaces_of_its_own(sandboxes):
    seen = []
    for _ in range(3):
        sb = sandboxes(block_network=False)
        seen.append(sb.exec("sh", "-c", "readlink /proc/self/ns/net /proc/self/ns/user").stdout.read())
    assert len(set(seen)) == 3, seen


def test_a_spare_holds_nothing_of_its_creator(sandboxes):
    """Only its socket, /dev/null, the signalfd it polls and the two namespaces it made: no file, pipe or
    socket of the caller's or of another sandbox; and the host processes' fixed environment."""
    waiting = waiting_spare(sandboxes)
    process = psutil.Process(waiting.pid)

    def targets():
        found = []
        for fd in os.listdir(f"/proc/{waiting.pid}/fd"):
            try:
                found.append(os.readlink(f"/proc/{waiting.pid}/fd/{fd}"))
            except FileNotFoundError:
                pass  # closed meanwhile: the spare still makes its namespaces
        return sorted(found)

    def kinds():
        return [target.split(":")[0] for target in targets()]

    # Once the namespaces are made: six descriptors show up before that too (the network namespace's
    # maker's socket beside the user namespace, red15), so it waits for these six. None under --nproc.
    made = "--no-namespaces" not in argv_of(waiting.pid)
    expected = ["/dev/null"] * 3 + ["anon_inode"] + (["net", "socket", "user"] if made else ["socket"])
    assert eventually(lambda: kinds() == expected), targets()
    assert process.environ() == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def test_a_spare_makes_namespaces_only_where_they_are_used(sandboxes):
    """Without a pids cgroup (RLIMIT_NPROC instead: --nproc) the runner child makes them after setting the
    limit, which a user namespace keeps of its maker (red15): the spare's would go unused."""
    sb = sandboxes()
    cgroup = cgroups.load(paths.sandbox_dir(sb.object_id))
    nproc = cgroup is None or "pids" not in cgroup.dirs
    assert spare._waiting is not None
    assert ("--no-namespaces" in argv_of(spare._waiting.pid)) == nproc


def test_a_spare_for_another_identity_or_supervisor_is_let_go(sandboxes):
    waiting = waiting_spare(sandboxes)
    supervisor, *identity = waiting.key
    assert spare.take(supervisor, [*identity, "--userns-uid", "1:2:3"]) is None
    assert eventually(lambda: ended(waiting.pid))
    waiting = waiting_spare(sandboxes)
    assert spare.take("/some/other/sandbox-supervisor", identity) is None
    assert eventually(lambda: ended(waiting.pid))


def test_a_create_whose_spare_died_starts_its_own_supervisor(sandboxes):
    waiting = waiting_spare(sandboxes)
    os.kill(waiting.pid, signal.SIGKILL)
    assert eventually(lambda: ended(waiting.pid))
    sb = sandboxes()
    assert sb._record.supervisor.pid != waiting.pid
    assert sb.exec("true").wait() == 0


def test_a_forked_child_does_not_take_its_parents_spare(sandboxes, app):
    waiting = waiting_spare(sandboxes)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read)
            sb = modal.Sandbox.create(app=app)
            os.write(write, str(sb._record.supervisor.pid).encode())
            sb.terminate()
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as f:
        theirs = int(f.read() or 0)
    assert os.waitpid(pid, 0)[1] == 0
    assert theirs not in (0, waiting.pid)
    assert not ended(waiting.pid)  # the child closed its copy of the socket only: the spare still waits
    assert sandboxes()._record.supervisor.pid == waiting.pid


def test_a_spare_ends_with_its_creator(app):
    script = textwrap.dedent("""
        import sys, time
        import pysandbox as modal
        from pysandbox.runtime import spare
        sb = modal.Sandbox.create(app=modal.App.lookup("spare-creator", create_if_missing=True))
        sb.terminate()
        print(spare._waiting.pid, flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        pid = int(child.stdout.readline())
        assert not ended(pid)
        child.kill()
        child.wait()
        assert eventually(lambda: ended(pid))
    finally:
        child.kill()
        child.wait()


def test_no_spare_when_turned_off_or_one_shot(sandboxes, monkeypatch):
    waiting = waiting_spare(sandboxes)
    monkeypatch.setenv("PYSANDBOX_WARM_SPARE", "0")
    sb = sandboxes()  # neither takes the spare waiting nor starts one
    assert sb._record.supervisor.pid != waiting.pid and spare._waiting is waiting
    monkeypatch.delenv("PYSANDBOX_WARM_SPARE")
    with spare.one_shot():
        assert sandboxes()._record.supervisor.pid == waiting.pid  # takes it; starts none
        assert spare._waiting is None


# A stand-in for a spare (spare.h): takes the claim and answers 't', or takes nothing; then ends at once.
STAND_IN = """
import socket, sys
s = socket.socket(fileno=0)
if sys.argv[1] == "takes":
    s.recvmsg(65536, 4096)
    s.send(b"t")
"""


@pytest.mark.parametrize("takes", [True, False])
def test_a_spare_that_took_its_claim_and_ended_is_not_replaced(takes, monkeypatch):
    # A spare that took the claim and ran its sandbox to the end before the creator looked (`sh -c "exit 3"` on a
    # loaded host) read as one that died without it: the create spawned a second supervisor for the same sandbox,
    # which found the cgroup the first had removed and recorded the sandbox as failed (test_19's soak, session 17).
    ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stand_in = subprocess.Popen([sys.executable, "-c", STAND_IN, "takes" if takes else "dies"], stdin=its.fileno())
    its.close()
    waiting = spare.Spare(stand_in.pid, ("stand-in",), ours, (), os.pidfd_open(stand_in.pid))
    looked = spare.Spare._exited
    monkeypatch.setattr(spare.Spare, "_exited", lambda self: stand_in.wait(timeout=30) is not None and looked(self))
    if not takes:
        stand_in.wait(timeout=30)
    fds = [os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC) for _ in range(6)]
    try:
        assert waiting.claim(["sandbox-supervisor", "--dir", "/nonexistent"], fds) is takes
    finally:
        for fd in fds:
            os.close(fd)
