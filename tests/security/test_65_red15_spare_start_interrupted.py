"""Red team (red15): a create interrupted while it started the next spare left its sandbox running, unrecorded.

launch() starts the next create's spare (runtime/spare.py) after this sandbox's supervisor is up and before
it returns the handle that holds the supervisor's confirm pipe. An exception there (Ctrl-C during the spare's
posix_spawn, or EMFILE from its socketpair) left launch() without returning it: the create failed and removed
the sandbox's directory, but the confirm pipe's write end stayed open in the caller, unreferenced, so the
supervisor waited for a confirmation that never came and the sandbox ran on, in no registry, for as long as
the caller lived. Starting a spare is only a head start for the next create: its failure must not fail this
one, and an interrupt must end the sandbox it interrupted, as one anywhere else in the create does."""

import contextlib
import os
import signal
import socket
import time
import types

import psutil
import pytest

import pysandbox as modal
from pysandbox.runtime import spare

pytestmark = pytest.mark.rootless


def supervisors_of_missing_sandboxes():
    """Our supervisors whose sandbox directory (--dir) is gone: run by nobody's record."""
    found = []
    for child in psutil.Process().children():
        try:
            argv = child.cmdline()
        except psutil.Error:
            continue
        if len(argv) > 2 and argv[0].endswith("sandbox-supervisor") and argv[1] == "--dir" \
                and not os.path.exists(argv[2]):
            found.append(child)
    return found


def sandbox_running(timeout=30):
    """Until a supervisor of ours runs its sandbox's init (its start may race the create's own end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if child.cmdline()[1:2] == ["--dir"] and any(
                        p.name() == "init" for p in child.children(recursive=True)):
                    return
        time.sleep(0.05)


def settle(timeout=15):
    """Until no such supervisor runs (a torn-down sandbox's supervisor exits within seconds)."""
    deadline = time.monotonic() + timeout
    while supervisors_of_missing_sandboxes() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = supervisors_of_missing_sandboxes()
    for process in left:  # not to outlive the test: SIGTERM, which a supervisor tears its sandbox down on
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
            process.wait(15)
    return left


def test_an_interrupt_while_the_spare_starts_leaves_no_sandbox_running(app, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_WARM_SPARE", raising=False)
    real = os.posix_spawn

    def interrupted(path, argv, *args, **kwargs):
        if "--spare" in argv:
            sandbox_running()
            raise KeyboardInterrupt  # Ctrl-C as the spare is spawned, the sandbox up meanwhile
        return real(path, argv, *args, **kwargs)

    monkeypatch.setattr(os, "posix_spawn", interrupted)
    old = spare._let_go()
    if old is not None:
        old.close()
    with pytest.raises(KeyboardInterrupt):
        modal.Sandbox.create(app=app)
    monkeypatch.undo()
    assert settle() == [], "a sandbox outlived its interrupted create"


def test_a_spare_that_cannot_start_does_not_fail_the_create(app, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_WARM_SPARE", raising=False)

    def no_descriptors(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(spare, "socket", types.SimpleNamespace(
        socketpair=no_descriptors, AF_UNIX=socket.AF_UNIX, SOCK_SEQPACKET=socket.SOCK_SEQPACKET,
        SOL_SOCKET=socket.SOL_SOCKET, SCM_RIGHTS=socket.SCM_RIGHTS, socket=socket.socket))
    old = spare._let_go()
    if old is not None:
        old.close()
    try:
        sb = modal.Sandbox.create(app=app)
    except OSError as exc:
        settle()
        pytest.fail(f"the create failed for its successor's spare: {exc!r}")
    try:
        assert sb.exec("true").wait() == 0
    finally:
        sb.terminate()
    assert settle() == []
