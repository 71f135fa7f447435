"""Red team (red12), guard: a network helper that fails while the others are up fails the sandbox before any of
its code runs, and leaves nothing behind.

Since 4e57c47 the supervisor starts every helper of the default network (the egress filter's nft, slirp4netns,
the DNS filter) before it waits for any (native/supervisor/netns.c, net_connect). So when one fails, the others
are already running: the DNS filter (a fork of the supervisor, outside the sandbox's cgroups, so no cgroup kill
reaches it), slirp4netns, or nft in the middle of its load. Each failure, injected through the caller's PATH
(netplan.tool) with a helper that fails only after the others came up, must end the sandbox with its
entrypoint never run, and every process of the supervisor's tree seen during the start must be gone after it.
Held at the time of writing; kept as a guard."""

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from pysandbox import settings

from ..procs import alive

pytestmark = pytest.mark.rootless

FAILS_LATE = "#!/bin/sh\n" + shutil.which("sleep") + " 2\nexit 1\n"


def _watch(stop, found, supervisor, earlier):
    """Every supervisor this process started (a child running `supervisor`, this checkout's binary), and its descendants, until
    `stop` is set. Only this process's: CI's other root suite runs sandboxes of the same checkout meanwhile. A
    warm spare (runtime/spare.py) is no sandbox's until claimed: it waits on, for the next create. A sandbox's
    supervisor in `earlier` (another test's, a module fixture's: running before this test's create) is not this
    test's."""
    me = psutil.Process()
    while not stop.is_set():
        for p in me.children():
            try:
                if p.pid not in earlier and _serving(p, supervisor):
                    for c in [p, *p.children(recursive=True)]:
                        # The name it runs under now: a helper is first a fork of the supervisor, until its exec.
                        name = _name(c)
                        if c.pid not in found or name != "?":
                            found[c.pid] = (found.get(c.pid, (c,))[0], name)
            except psutil.Error:
                pass
        time.sleep(0.02)


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("slirp4netns") is None,
                    reason="the default network's helpers")
@pytest.mark.parametrize("helper", ["nft", "slirp4netns"])
def test_a_helper_failing_while_the_others_run_fails_the_sandbox_and_leaks_nothing(sandboxes, request,
                                                                                   monkeypatch, runner, helper):
    if runner == "gvisor" and helper == "nft":
        pytest.skip("under gVisor the filter is loaded elsewhere")
    fake = Path(tempfile.mkdtemp(prefix="red12-"))  # the helpers run as the sandbox's identity: it must pass
    request.addfinalizer(lambda: shutil.rmtree(fake))
    fake.chmod(0o755)
    (fake / helper).write_text(FAILS_LATE)
    (fake / helper).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    seen, stop = {}, threading.Event()
    supervisor = os.path.realpath(settings.native_binary("sandbox-supervisor"))
    earlier = {p.pid for p in psutil.Process().children() if _serving(p, supervisor)}
    watcher = threading.Thread(target=_watch, args=(stop, seen, supervisor, earlier))
    watcher.start()
    try:
        sb = sandboxes("sh", "-c", "echo entrypoint-ran")
        # Watched until the sandbox ended, not for a fixed time: on a busy host its helpers may start
        # well after create() returned. The failing one fails 2 s after its start; the others are up meanwhile.
        sb.wait(raise_on_termination=False)
    finally:
        stop.set()
        watcher.join()
    assert sb.returncode != 0
    assert "entrypoint-ran" not in sb.stdout.read()
    names = sorted(name for _, name in seen.values())
    # the failing helper, slirp4netns and the DNS filter (a second sandbox-supervisor) were all up at once
    assert helper in names and "slirp4netns" in names and names.count("sandbox-supervisor") >= 2, names
    deadline = time.monotonic() + 10
    running = {pid: p for pid, (p, _) in seen.items()}
    while running and time.monotonic() < deadline:
        running = {pid: p for pid, p in running.items() if alive(p)}
        time.sleep(0.1)
    assert not running, [(p.pid, p.name()) for p in running.values()]


def _serving(p, supervisor):
    """Whether `p` runs `supervisor` for a sandbox: not a spare waiting for one (nor one just spawned, whose
    command line the kernel shows empty for a moment after its exec: asked again on the next round)."""
    try:
        argv = p.cmdline()
        return p.exe() == supervisor and argv[1:2] not in ([], ["--spare"])
    except psutil.Error:
        return False


def _name(p):
    try:
        name = p.name()
    except psutil.Error:
        return "?"
    # The kernel's 15 bytes of it, when psutil could not read the whole from the command line (the process
    # exiting): the same program.
    return "sandbox-supervisor" if name == "sandbox-supervisor"[:15] else name
