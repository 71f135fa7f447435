"""Item 15: a pid that was reused cannot redirect a signal.

The host signals a sandbox only through its supervisor's pidfd, opened and
then checked against the recorded start time (pysandbox._core.lifecycle.pidfd);
the supervisor and sandbox-init only signal children they have not reaped
yet, whose pids the kernel cannot hand out again."""

import errno
import fcntl
import os
import signal
import struct
import subprocess
import sys

import attrs
import psutil
import pytest

import pysandbox as modal
from pysandbox import _aio, agent
from pysandbox._state import paths

pytestmark = pytest.mark.rootless

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)

# Blocks SIGTERM so that a signal sent to it stays visible as pending.
VICTIM = "import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}); print('ready', flush=True); sys.stdin.read()"


def pending(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
    return int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)


def test_terminate_never_signals_a_process_that_reused_the_supervisor_pid(sb):
    supervisor = psutil.Process(sb._record.supervisor.pid)
    supervisor.kill()  # dies without a word; its pid is free for reuse
    supervisor.wait()
    victim = subprocess.Popen([sys.executable, "-c", VICTIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout.readline() == "ready\n"
        # The record as it reads once the kernel gave the supervisor's pid to
        # the victim: the victim's pid, the dead supervisor's start time.
        handle = modal.Sandbox.from_id(sb.object_id)
        reused = attrs.evolve(handle._record.supervisor, pid=victim.pid)
        handle._record = attrs.evolve(handle._record, supervisor=reused)
        assert handle.terminate(wait=True) == 137
        assert pending(victim.pid) & SIGTERM_BIT == 0
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def start_raw(sb, argv):
    """Start a process through init's protocol; returns the connection and the pid."""
    sock = agent.connect(paths.sandbox_dir(sb.object_id) / "agent.sock")
    null = os.open("/dev/null", os.O_RDWR)
    try:
        agent.send(sock, agent.message(agent.REQ_EXEC, agent.exec_body(argv, [], "/", 0)), [null] * 3)
    finally:
        os.close(null)
    reply = _aio.run_sync(agent.receive(sock)).raise_for_error()
    assert reply.kind == agent.REP_STARTED
    return sock, struct.unpack("=I", reply.body)[0]


def sandbox_init_host_pid(sb):
    inside = psutil.Process(sb._record.supervisor.pid).children(recursive=True)
    return next(p.pid for p in inside if p.cmdline()[:1] == ["/__pysandbox/init"])


NS_GET_USERNS = 0xB701


def set_next_pid(sb, pid):
    """Make `pid` the next one the sandbox's pid namespace hands out (ns_last_pid,
    written from inside the user namespace that owns the sandbox's pid namespace,
    where the host caller, its owner, holds CAP_SYS_ADMIN; init itself runs in a
    nested one, bwrap's --disable-userns)."""
    # Root becomes sandbox root; a rootless caller keeps its ids (it may not
    # setgroups in the sandbox's namespace) and is sandbox root already.
    keep_ids = ["--preserve-credentials"] if os.geteuid() != 0 else []
    pid_ns = f"/proc/{sandbox_init_host_pid(sb)}/ns/pid"
    ns_fd = os.open(pid_ns, os.O_RDONLY | os.O_CLOEXEC)
    owner_fd = fcntl.ioctl(ns_fd, NS_GET_USERNS)
    try:
        subprocess.run(["nsenter", f"--user=/proc/self/fd/{owner_fd}", f"--pid={pid_ns}", *keep_ids, "--",
                        "sh", "-c", f"echo {pid - 1} > /proc/sys/kernel/ns_last_pid"], check=True, pass_fds=[owner_fd])
    finally:
        os.close(owner_fd)
        os.close(ns_fd)


def test_init_never_signals_a_process_that_reused_a_pid(sb):
    sock, pid = start_raw(sb, ["true"])
    with sock:
        exited = _aio.run_sync(agent.receive(sock))
        assert (exited.kind, agent.EXITED.unpack_from(exited.body)) == (agent.REP_EXITED, (agent.EXIT_CODE, 0))
        # The pid of the finished process goes to a new one, which blocks SIGUSR1
        # so that a signal sent to it would stay visible as pending.
        set_next_pid(sb, pid)
        victim = sb.exec("python3", "-c", VICTIM.replace("SIGTERM", "SIGUSR1"))
        assert next(iter(victim.stdout)).startswith("ready")
        assert sb.exec("test", "-d", f"/proc/{pid}").wait() == 0
        # A signal for the first process, on its connection, after its pid was reused.
        agent.send(sock, agent.message(agent.REQ_SIGNAL, struct.pack("=I", signal.SIGUSR1)))
        with pytest.raises(agent.AgentError) as refused:
            _aio.run_sync(agent.receive(sock)).raise_for_error()
    assert refused.value.errno == errno.ESRCH
    p = sb.exec("grep", "-E", "^(SigPnd|ShdPnd|PPid)", f"/proc/{pid}/status")
    fields = dict(line.split(":\t") for line in p.stdout.read().splitlines())
    assert p.wait() == 0 and fields["PPid"] == "1"  # the victim holds the reused pid
    assert not (int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)) & (1 << (signal.SIGUSR1 - 1))
    assert sb.exec("kill", "-KILL", str(pid)).wait() == 0
    assert victim.wait() == 128 + signal.SIGKILL
