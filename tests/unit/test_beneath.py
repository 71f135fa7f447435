"""openat2(RESOLVE_IN_ROOT) asks for a retry (EAGAIN) when a rename or mount anywhere on the
host races a walk through "..": a busy host must not make a volume path fail, and a sandbox
renaming in a loop must not make the host spin. The tree operations built on it stay in the
tree whatever links it holds, and hand everything they make to `adopt`."""

import ctypes
import errno
import os

import pytest

from pysandbox import _beneath
from pysandbox.types import FileEntryType

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


class Adopted:
    """An adopt callable that records what it was given (names by their directory's path)."""

    def __init__(self):
        self.made = []

    def __call__(self, path, dir_fd=None):
        where = os.readlink(f"/proc/self/fd/{path if dir_fd is None else dir_fd}")
        self.made.append(where if dir_fd is None else os.path.join(where, path))


@pytest.fixture
def volume(tmp_path):
    data, host = tmp_path / "data", tmp_path / "host"
    (data / "src" / "sub").mkdir(parents=True)
    (data / "src" / "sub" / "f").write_text("content")
    os.symlink(str(host / "secret"), data / "src" / "to-host")  # absolute: the host's file, if followed
    os.mkfifo(data / "src" / "fifo")
    host.mkdir()
    (host / "secret").write_text("host")
    root = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    yield data, host, root
    os.close(root)


def test_copy_tree_copies_links_as_links_leaves_out_fifos_and_adopts_what_it_made(volume):
    data, _, root = volume
    adopted = Adopted()
    _beneath.copy_tree(root, "src", "dst/deep", adopted)
    assert os.readlink(data / "dst" / "deep" / "to-host") == os.readlink(data / "src" / "to-host")
    assert (data / "dst" / "deep" / "sub" / "f").read_text() == "content"
    assert not os.path.lexists(data / "dst" / "deep" / "fifo")
    made = {str(data / p) for p in ("dst", "dst/deep", "dst/deep/sub", "dst/deep/to-host")}
    assert made <= set(adopted.made)
    assert len(adopted.made) == len(made) + 1  # and the copied file, by its fd
    assert all(p.startswith(str(data / "dst")) for p in adopted.made)


def test_a_write_through_a_planted_link_stays_in_the_tree(volume):
    data, host, root = volume
    os.symlink(str(host), data / "escape")
    with pytest.raises(FileNotFoundError):  # the link resolves inside the tree, where nothing is
        _beneath.write_file(root, "escape/new", os.open("/dev/null", os.O_RDONLY), None, True, Adopted(), size=0)
    assert sorted(os.listdir(host)) == ["secret"]


def test_entries_of_a_file_or_a_directory(volume):
    _, _, root = volume
    assert [(e.path, e.type) for e in _beneath.entries(root, "/src/sub/f", False)] == [("src/sub/f", FileEntryType.FILE)]
    listed = {e.path: e.type for e in _beneath.entries(root, "src", True)}
    assert listed == {"src/sub": FileEntryType.DIRECTORY, "src/sub/f": FileEntryType.FILE,
                      "src/to-host": FileEntryType.SYMLINK, "src/fifo": FileEntryType.FIFO}
    assert not _beneath.is_link(root, "src/sub") and _beneath.is_link(root, "src/to-host")
    assert _beneath.is_dir(root, "src/sub") and not _beneath.is_dir(root, "src/to-host")
