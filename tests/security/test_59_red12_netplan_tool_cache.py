"""Red team (red12): netplan.tool's path cache (a426a51) keeps a helper's path while os.access(path, X_OK)
holds there, which is also true of a directory: a helper's path that became a directory is still handed to
the supervisor, which fails every create with the default network, where the search the cache replaces
(shutil.which, which skips directories) found the helper further on PATH.

Only someone who can write to a directory of the caller's PATH can do it, and that someone could put any
program there instead, so this is robustness, not isolation: informational. (By design, and documented by
tests/unit/runtime/test_network.py, a helper installed earlier on PATH is not seen while the one found stays.)

Suggested fix: keep the path only while it is still a regular executable file: os.stat() it and check
S_ISREG besides the X_OK (or compare its (st_dev, st_ino) with the ones seen when found).

Fixed: the path is kept only while it is not a directory (shutil.which's own test)."""

from pysandbox.runtime import netplan


def test_a_helper_replaced_by_a_directory_is_searched_for_again(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
        (directory / "pysb-red12-helper").write_text("#!/bin/sh\n")
        (directory / "pysb-red12-helper").chmod(0o755)
    monkeypatch.setenv("PATH", f"{first}:{second}")
    assert netplan.tool("pysb-red12-helper") == str(first / "pysb-red12-helper")
    (first / "pysb-red12-helper").unlink()
    (first / "pysb-red12-helper").mkdir()  # a directory now: no program to run there
    assert netplan.tool("pysb-red12-helper") == str(second / "pysb-red12-helper")
