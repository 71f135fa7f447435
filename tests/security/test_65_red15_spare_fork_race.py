"""Red team (red15): a fork in another thread while a spare started kept the spare alive past its creator.

A spare ends when its creator's end of the socket closes; a forked child closes its copy (runtime/spare.py
tracks it with _fork). But the socket exists before it is tracked: from the socketpair, over the spare's
posix_spawn, to the Spare object. A thread that forked meanwhile (a multiprocessing fork pool starting a
worker, a daemonizing library) gave its child an untracked copy, which it kept: the spare, root for a root
caller, with a user and a network namespace made, outlived the process it was started for by as long as that
child lived, belonging to no sandbox and no creator. Forks now wait until a starting spare is tracked."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.rootless

ROOT = Path(__file__).resolve().parents[2]

CREATOR = textwrap.dedent("""
    import os, threading, time
    import pysandbox as modal
    from pysandbox.runtime import spare

    forked = []
    real = os.posix_spawn

    def fork_meanwhile():
        pid = os.fork()
        if pid == 0:  # a long-lived child that knows nothing of sandboxes (nor of our stdout)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            time.sleep(60)
            os._exit(0)
        forked.append(pid)

    def spawn(path, argv, *args, **kwargs):
        if "--spare" in argv:  # another thread forks while the spare starts
            thread = threading.Thread(target=fork_meanwhile)
            thread.start()
            thread.join(0.5)
        return real(path, argv, *args, **kwargs)

    os.posix_spawn = spawn
    app = modal.App.lookup("red15-fork-race", create_if_missing=True)
    modal.Sandbox.create(app=app).terminate()
    os.posix_spawn = real
    deadline = time.monotonic() + 30
    while not forked and time.monotonic() < deadline:
        time.sleep(0.01)
    print(spare._waiting.pid, forked[0], flush=True)
""")


def ended(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_spare_ends_with_its_creator_whatever_forked_meanwhile():
    creator = subprocess.run([sys.executable, "-c", CREATOR], stdout=subprocess.PIPE, text=True, timeout=120,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert creator.returncode == 0
    spare_pid, child = (int(word) for word in creator.stdout.split())
    try:
        deadline = time.monotonic() + 10
        while not ended(spare_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ended(spare_pid), "the spare outlived its creator: a forked child holds the creator's end"
    finally:
        for pid in (child, spare_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
