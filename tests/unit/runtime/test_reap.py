"""launch.reap_finished: collects exactly the supervisors of ours that exited, leaves no zombie,
and leaves other children (that exited) to their owner."""

import os
import signal
import time

import pytest

from pysandbox.runtime import launch


def spawn(*argv):
    return os.posix_spawn(argv[0], list(argv), os.environ)


def exited(pid):
    """Once `pid` (a child) has exited, without collecting it."""
    for _ in range(500):
        found = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if found is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"child {pid} did not exit")


def collected(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@pytest.fixture
def spawned(monkeypatch):
    pids = set()
    monkeypatch.setattr(launch, "_spawned", pids)
    yield pids
    for pid in list(pids):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.mark.parametrize("foreign_first", [False, True])
def test_the_supervisors_that_exited_are_collected_and_only_they(spawned, foreign_first, monkeypatch):
    foreign = spawn("/bin/true") if foreign_first else None  # exited, not collected: its owner's
    running = [spawn("/bin/sleep", "60") for _ in range(3)]
    ended = [spawn("/bin/true") for _ in range(3)]
    spawned.update(running + ended)
    for pid in ended + ([foreign] if foreign else []):
        exited(pid)
    asked = []
    waitpid = os.waitpid
    monkeypatch.setattr(os, "waitpid", lambda pid, options: asked.append(pid) or waitpid(pid, options))
    try:
        launch.reap_finished()
        monkeypatch.setattr(os, "waitpid", waitpid)
        # One call per supervisor that exited; all of them only when another child hides them.
        assert sorted(asked) == sorted(ended + (running if foreign else []))
        assert spawned == set(running)
        assert all(collected(pid) for pid in ended) and not any(collected(pid) for pid in running)
        if foreign:
            assert os.waitpid(foreign, os.WNOHANG)[0] == foreign  # still there for its owner
    finally:
        if foreign and not collected(foreign):
            os.waitpid(foreign, 0)


def test_supervisors_collected_by_someone_else_are_forgotten(spawned):
    pid = spawn("/bin/true")
    spawned.add(pid)
    os.waitpid(pid, 0)  # the application's own wait() took it
    launch.reap_finished()
    assert spawned == set()
