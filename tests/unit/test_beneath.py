"""openat2(RESOLVE_IN_ROOT) asks for a retry (EAGAIN) when a rename or mount anywhere on the
host races a walk through "..": a busy host must not make a volume path fail, and a sandbox
renaming in a loop must not make the host spin."""

import ctypes
import errno
import os

import pytest

from pysandbox import _beneath

LIBC = _beneath._libc


class RacingLibc:
    """The kernel's answer to the first `races` calls is EAGAIN; then the real one."""

    def __init__(self, races):
        self.races = races
        self.calls = 0

    def syscall(self, *args):
        self.calls += 1
        if self.calls <= self.races:
            ctypes.set_errno(errno.EAGAIN)
            return -1
        return LIBC.syscall(*args)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    os.symlink("../a/./f", tmp_path / "a" / "up")
    root = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    yield root
    os.close(root)


def test_a_raced_walk_is_retried(tree, monkeypatch):
    racing = RacingLibc(races=3)
    monkeypatch.setattr(_beneath, "_libc", racing)
    fd = _beneath.open_in_root(tree, "/a/up", os.O_RDONLY)
    try:
        assert os.read(fd, 10) == b"x"
    finally:
        os.close(fd)
    assert racing.calls == 4


def test_an_endless_race_is_an_error_not_a_spin(tree, monkeypatch):
    racing = RacingLibc(races=10**9)
    monkeypatch.setattr(_beneath, "_libc", racing)
    with pytest.raises(OSError) as raised:
        _beneath.open_in_root(tree, "/a/up", os.O_RDONLY)
    assert raised.value.errno == errno.EAGAIN
    assert racing.calls == _beneath._RESOLVE_RETRIES


def test_other_errors_are_not_retried(tree, monkeypatch):
    racing = RacingLibc(races=0)
    monkeypatch.setattr(_beneath, "_libc", racing)
    with pytest.raises(FileNotFoundError):
        _beneath.open_in_root(tree, "/a/missing", os.O_RDONLY)
    assert racing.calls == 1
