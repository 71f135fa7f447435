"""Red team (red15): a spare told to end (SIGTERM, SIGINT, SIGHUP) served the next sandbox and ended it at once.

A spare waits with the supervisor's termination signals blocked, as its creator spawned it (launch.py's
SUPERVISOR_SIGNALS: a supervisor must live to tear its sandbox down). One sent to a waiting spare (an
operator or a service manager stopping the supervisors it sees) stayed pending: the spare did not end, took
the next create's claim, and the supervisor it became found the signal at once and terminated that sandbox
(exit 137) before the caller could use it. A spare ends on them, unclaimed, and the create starts its own
supervisor."""

import os
import signal
import time

import pytest

from pysandbox.runtime import spare

pytestmark = pytest.mark.rootless


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_spare_told_to_end_does_not_end_the_next_sandbox(sandboxes, monkeypatch, signum):
    monkeypatch.delenv("PYSANDBOX_WARM_SPARE", raising=False)
    sandboxes()
    waiting = spare._waiting
    assert waiting is not None
    os.kill(waiting.pid, signum)
    time.sleep(0.2)  # delivered (or left pending) before the next create
    sb = sandboxes()
    deadline = time.monotonic() + 2  # it runs on: the supervisor it got was told nothing
    while sb.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sb.poll() is None, f"the sandbox ended at once ({sb.poll()})"
    assert sb.exec("echo", "ok").stdout.read() == "ok\n"
