"""_state.files.remove_tree (native sandbox-rmtree) on trees sandboxes wrote: no symlink followed,
chmod 000 and any depth got through, and another cleanup removing the same tree at once is fine."""

import os
import subprocess

from pysandbox import settings
from pysandbox._state.files import remove_tree


def test_symlinks_are_removed_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    os.symlink(outside, tree / "link")
    os.symlink(outside, tree / "sub" / "link")
    remove_tree(tree)
    assert not tree.exists() and (outside / "keep").read_text() == "keep"


def test_locked_and_deep_directories_are_removed(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3000):  # far past PATH_MAX as one path
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        os.fchmod(fd, 0)
    finally:
        os.close(fd)
    (tree / "locked").mkdir(mode=0)
    remove_tree(tree)
    assert not tree.exists()


def _tree(root, width=100):
    for i in range(width):
        leaf = root / f"d{i}" / "x" / "y"
        leaf.mkdir(parents=True)
        for j in range(10):
            (leaf / f"f{j}").write_bytes(b"")


def test_two_cleanups_of_one_tree_both_succeed(tmp_path):
    # A killed process's orphaned sandbox-rmtree and a collection may remove one tree at once.
    for round_ in range(5):
        tree = tmp_path / f"tree{round_}"
        _tree(tree)
        other = subprocess.Popen([settings.native_binary("sandbox-rmtree"), str(tree)], env=settings.HOST_ENV,
                                 stderr=subprocess.PIPE, text=True)
        remove_tree(tree)  # OSError if it tripped over the other's removals
        assert other.wait() == 0, other.stderr.read()
        assert not tree.exists()
