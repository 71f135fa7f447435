"""reaper: collects exactly the supervisors of ours that exited, asking only about those, leaves no
zombie and no fd, forgets one the application collected itself (even while other children live),
and leaves other children to their owner."""

import os
import resource
import signal
import time

import pytest

from pysandbox.runtime import reaper


def spawn(*argv):
    return os.posix_spawn(argv[0], list(argv), os.environ)


def exited(pid):
    """Once `pid` (a child) has exited, without collecting it."""
    for _ in range(500):
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"child {pid} did not exit")


def collected(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def tracker(monkeypatch):
    """reaper with a state of its own; every child it still tracks is killed and collected after."""
    monkeypatch.setattr(reaper, "_epoll", None)
    monkeypatch.setattr(reaper, "_pidfds", {})
    monkeypatch.setattr(reaper, "_pids", set())
    children = []

    def start(*argv):
        pid = spawn(*argv)
        children.append(pid)
        reaper.track(pid)
        return pid

    yield start
    for pid in children:
        if not collected(pid):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    for pidfd in reaper._pidfds:
        os.close(pidfd)
    if reaper._epoll is not None:
        reaper._epoll.close()


def reap_asking(monkeypatch):
    """Reap; the supervisors it asked about (by pidfd or by pid)."""
    asked = []
    waitid, waitpid = os.waitid, os.waitpid
    with monkeypatch.context() as patch:
        patch.setattr(os, "waitid", lambda kind, id, options: asked.append(reaper._pidfds[id]) or
                      waitid(kind, id, options))
        patch.setattr(os, "waitpid", lambda pid, options: asked.append(pid) or waitpid(pid, options))
        reaper.reap_finished()
    return asked


@pytest.mark.parametrize("foreign_first", [False, True])
def test_the_supervisors_that_exited_are_collected_and_only_they(tracker, foreign_first, monkeypatch):
    foreign = spawn("/bin/true") if foreign_first else None  # exited, not collected: its owner's
    running = [tracker("/bin/sleep", "60") for _ in range(3)]
    ended = [tracker("/bin/true") for _ in range(3)]
    for pid in ended + ([foreign] if foreign else []):
        exited(pid)
    fds = open_fds()
    try:
        asked = reap_asking(monkeypatch)
        assert sorted(asked) == sorted(ended)  # one question per supervisor that exited, whatever else lives
        assert reaper.tracked() == set(running)
        assert all(collected(pid) for pid in ended) and not any(collected(pid) for pid in running)
        assert len(fds - open_fds()) == len(ended)  # their pidfds closed, nothing else
        if foreign:
            assert os.waitpid(foreign, os.WNOHANG)[0] == foreign  # still there for its owner
    finally:
        if foreign and not collected(foreign):
            os.waitpid(foreign, 0)


@pytest.mark.parametrize("others_live", [False, True])
def test_supervisors_collected_by_someone_else_are_forgotten(tracker, others_live):
    # The case the waitid(P_ALL, WNOWAIT) version broke: another child alive, so waitid never
    # named the one the application had collected, and its pid stayed.
    running = tracker("/bin/sleep", "60") if others_live else None
    foreign = spawn("/bin/sleep", "60") if others_live else None
    pid = tracker("/bin/true")
    try:
        os.waitpid(pid, 0)  # the application's own wait() took it
        reaper.reap_finished()
        assert reaper.tracked() == ({running} if others_live else set())
    finally:
        if foreign:
            os.kill(foreign, signal.SIGKILL)
            os.waitpid(foreign, 0)


def test_past_a_quarter_of_the_fd_limit_supervisors_are_kept_by_pid(tracker, monkeypatch):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with monkeypatch.context() as patch:
        patch.setattr(resource, "getrlimit", lambda kind: (8, hard))  # a quarter: 2 pidfds
        pids = [tracker("/bin/true") for _ in range(3)]
    assert len(reaper._pidfds) == 2 and len(reaper._pids) == 1
    for pid in pids:
        exited(pid)
    reaper.reap_finished()
    assert reaper.tracked() == set() and all(collected(pid) for pid in pids)


def test_without_pidfds_supervisors_are_kept_by_pid(tracker, monkeypatch):
    def unsupported(pid):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", unsupported)
    running, ended = tracker("/bin/sleep", "60"), tracker("/bin/true")
    exited(ended)
    reaper.reap_finished()
    assert reaper.tracked() == {running} and collected(ended)


def test_a_forked_child_forgets_the_supervisors_and_leaves_the_parents_alone(tracker):
    running = tracker("/bin/sleep", "60")
    child = os.fork()
    if child == 0:
        ok = reaper.tracked() == set() and not reaper._pidfds
        reaper.reap_finished()
        os._exit(0 if ok else 1)
    assert os.waitpid(child, 0)[1] == 0
    assert reaper.tracked() == {running}
    os.kill(running, signal.SIGKILL)
    exited(running)
    reaper.reap_finished()  # the parent's epoll set still holds it
    assert reaper.tracked() == set() and collected(running)
