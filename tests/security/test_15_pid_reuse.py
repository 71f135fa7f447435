"""Item 15: a pid that was reused cannot redirect a signal.

The host signals a sandbox only through its supervisor's pidfd, opened and
then checked against the recorded start time (pysandbox._core.lifecycle.pidfd);
the supervisor and sandbox-init (exec timeouts) only signal children they have
not reaped yet, whose pids the kernel cannot hand out again."""

import signal
import subprocess
import sys

import attrs
import psutil
import pytest

import pysandbox as modal

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
