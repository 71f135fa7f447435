"""Red team (red15): a create handed to a spare that had died failed (ProcessLookupError), or named a dead one.

A create takes its process's spare when the spare's end of the socket is still open (runtime/spare.py
usable()). The spare's own children hold that end too (forked while it makes the namespaces: the user
namespace's maker and holder, the network namespace's maker; it is close-on-exec, not close-on-fork), so a
spare killed meanwhile (SIGKILL, the OOM killer) still looked usable: the claim was sent into a socket nobody
would read, and the create named the dead spare as its supervisor, failing with ProcessLookupError once it
was reaped, and leaking the sandbox's confirm pipe. tests/sandbox/test_spare.py's
test_a_create_whose_spare_died_starts_its_own_supervisor failed that way now and then (rootless, where the
namespaces take longest). Here another holder of the socket stands in for those children, deterministically.
A create whose spare died after the claim was sent now starts its own supervisor."""

import ctypes
import os
import platform
import select
import signal
import time

import pytest

from pysandbox.runtime import launch, spare

pytestmark = pytest.mark.rootless

PIDFD_GETFD = 438  # the same number on x86-64 and aarch64
assert platform.machine() in ("x86_64", "aarch64")


def targets(pid):
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            pass  # closed meanwhile
    return found


def steal_socket(pid):
    """A copy of the spare's end of its socket (as its children hold one), by pidfd_getfd, once it waits
    with its namespaces made (then its one socket is that end)."""
    deadline = time.monotonic() + 30
    while {"user", "net"} - {t.split(":")[0] for t in targets(pid).values()} and time.monotonic() < deadline:
        time.sleep(0.01)
    for fd, target in targets(pid).items():
        if target.startswith("socket:") and fd >= 3:
            pidfd = os.pidfd_open(pid)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                got = libc.syscall(PIDFD_GETFD, pidfd, fd, 0)
                if got < 0:
                    pytest.skip(f"pidfd_getfd: {os.strerror(ctypes.get_errno())}")
                return got
            finally:
                os.close(pidfd)
    pytest.fail("the spare holds no socket")


def test_a_create_whose_spare_died_with_its_socket_held_starts_its_own(sandboxes, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_WARM_SPARE", raising=False)
    sandboxes()
    waiting = spare._waiting
    assert waiting is not None
    held = steal_socket(waiting.pid)
    pidfd = os.pidfd_open(waiting.pid)
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], 10)  # until it has exited
        launch.reap_finished()  # and is reaped: its pid names nothing now
        sb = sandboxes()
        assert sb._record.supervisor.pid != waiting.pid
        assert sb.exec("echo", "ok").stdout.read() == "ok\n"
    finally:
        os.close(pidfd)
        os.close(held)
