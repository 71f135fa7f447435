"""_overlay.LayerView: an image's merged tree read by fd, its symlinks resolved inside the image."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pysandbox import _beneath
from pysandbox._overlay import LayerView
from pysandbox.exception import InvalidError


def layers(tmp_path: Path, count: int):
    paths = [tmp_path / f"layer{i}" for i in range(count)]
    for path in paths:
        path.mkdir()
    return paths


def view(paths):
    return LayerView([str(p) for p in paths])


def test_symlinks_resolve_inside_the_image(tmp_path):
    (base,) = layers(tmp_path, 1)
    (base / "usr" / "bin").mkdir(parents=True)
    os.symlink("usr/bin", base / "bin")
    os.symlink("/oldroot/tmp", base / "w")
    os.symlink("../../../../etc", base / "usr" / "up")
    os.symlink("loop", base / "loop")
    with view([base]) as v:
        assert v.resolve("/bin/sh") == "/usr/bin/sh"
        assert v.resolve("/w/x") == "/oldroot/tmp/x"  # the image's /oldroot, not the host's
        assert v.resolve("/usr/up/passwd") == "/etc/passwd"  # ".." stops at the image's root
        assert v.resolve("/bin", follow_last=False) == "/bin"
        assert v.resolve("/") == "/" and v.resolve("") == "/"
        with pytest.raises(InvalidError, match="Too many symlinks"):
            v.resolve("/loop/x")


def test_a_hidden_directory_shows_nothing_of_the_image(tmp_path):
    # A runner's fresh /tmp covers the image's: links the image keeps there lead nowhere.
    (base,) = layers(tmp_path, 1)
    (base / "real" / "tmp").mkdir(parents=True)
    os.symlink("real/tmp", base / "tmp")
    os.symlink("/etc", base / "real" / "tmp" / "w")
    os.symlink("/tmp/w/x", base / "in")
    os.symlink("/tmp/../etc", base / "up")
    with view([base]) as v:
        assert v.resolve("/tmp/w/x") == "/etc/x"
        v.hide(v.resolve("/tmp"))
        assert v.resolve("/tmp/w/x") == "/real/tmp/w/x"
        assert v.resolve("/in") == "/real/tmp/w/x"
        assert v.resolve("/up/passwd") == "/real/etc/passwd"  # ".." of the hidden directory is its parent's
        assert v.resolve("/tmp") == "/real/tmp"


def test_the_top_entry_wins_and_a_lower_symlink_under_an_upper_directory_is_never_followed(tmp_path):
    lower, upper = layers(tmp_path, 2)
    host = tmp_path / "host"
    (host / "secret").mkdir(parents=True)
    os.symlink(str(host), lower / "a")  # an absolute host path: followed on the host, it would find "secret"
    (upper / "a").mkdir()
    os.symlink("/elsewhere", lower / "b")
    (upper / "b").write_text("")
    with view([lower, upper]) as v:
        assert v.lookup(["a"]).mode & 0o170000 == 0o040000
        assert v.lookup(["a", "secret"]) is None
        assert v.resolve("/a/secret") == "/a/secret"
        assert v.lookup(["b"]).target is None  # the upper file hides the lower symlink


def test_directories_merge_until_a_non_directory(tmp_path):
    bottom, middle, top = layers(tmp_path, 3)
    (bottom / "d").mkdir()
    (bottom / "d" / "from-bottom").write_text("")
    (middle / "d").write_text("a file between the directories")
    (top / "d").mkdir()
    (top / "d" / "from-top").write_text("")
    (middle / "e").mkdir()
    (middle / "e" / "f").write_text("")
    (top / "e").mkdir()
    with view([bottom, middle, top]) as v:
        assert v.lookup(["d", "from-top"]) is not None
        assert v.lookup(["d", "from-bottom"]) is None  # the middle file ended the merge
        assert v.lookup(["e", "f"]) is not None


def test_an_opaque_directory_hides_the_layers_below(tmp_path):
    lower, upper = layers(tmp_path, 2)
    (lower / "d").mkdir()
    (lower / "d" / "old").write_text("")
    (upper / "d").mkdir()
    os.setxattr(upper / "d", "user.overlay.opaque", b"y")
    with view([lower, upper]) as v:
        assert v.lookup(["d"]) is not None
        assert v.lookup(["d", "old"]) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="a whiteout is a 0/0 character device: making one needs root")
def test_a_whiteout_deletes(tmp_path):
    lower, upper = layers(tmp_path, 2)
    os.symlink("/elsewhere", lower / "gone")
    os.mknod(upper / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    with view([lower, upper]) as v:
        assert v.lookup(["gone"]) is None
        assert v.resolve("/gone/x") == "/gone/x"


def test_no_fd_is_left_open(tmp_path):
    (base,) = layers(tmp_path, 1)
    (base / "a" / "b").mkdir(parents=True)
    before = len(os.listdir("/proc/self/fd"))
    with view([base]) as v:
        for _ in range(50):
            v.resolve("/a/b/c")
    assert len(os.listdir("/proc/self/fd")) == before


# The oracle: the layers applied one over another into one directory (what overlayfs shows, for
# layers without whiteouts), resolved by the kernel with openat2(RESOLVE_IN_ROOT).
NAMES = st.sampled_from(["a", "b"])
TARGETS = st.lists(st.sampled_from(["a", "b", "..", ".", "/"]), min_size=1, max_size=4).map(
    lambda parts: ("/" if parts[0] == "/" else "") + "/".join(p for p in parts if p != "/") or ".")
ENTRY = st.tuples(st.lists(NAMES, min_size=1, max_size=3), st.sampled_from(["dir", "file", "link"]), TARGETS)


def _apply(layer: Path, entries) -> None:
    for parts, kind, target in entries:
        path = layer.joinpath(*parts)
        parents = [layer.joinpath(*parts[:depth]) for depth in range(1, len(parts))]
        if any(os.path.lexists(p) and (p.is_symlink() or not p.is_dir()) for p in parents) or os.path.lexists(path):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            path.mkdir()
        elif kind == "file":
            path.write_text("")
        else:
            os.symlink(target, path)


def _flatten(paths, into: Path) -> None:
    for layer in paths:
        for directory, dirs, files in os.walk(layer):
            rel = Path(directory).relative_to(layer)
            for name in dirs + files:
                source, dest = Path(directory) / name, into / rel / name
                if os.path.lexists(dest) and not (source.is_dir() and not source.is_symlink()
                                                  and dest.is_dir() and not dest.is_symlink()):
                    shutil.rmtree(dest) if dest.is_dir() and not dest.is_symlink() else dest.unlink()
                if source.is_symlink():
                    os.symlink(os.readlink(source), dest)
                    if name in dirs:
                        dirs.remove(name)
                elif source.is_dir():
                    dest.mkdir(exist_ok=True)
                else:
                    dest.write_text("")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stack=st.lists(st.lists(ENTRY, max_size=8), min_size=1, max_size=3),
       path=st.lists(NAMES, min_size=1, max_size=5))
@example(stack=[[(["a"], "file", "a"), (["b", "a", "b"], "link", "/a/.")]], path=["b", "a", "b"])  # "." after a file
def test_resolution_matches_the_kernel_on_the_flattened_image(tmp_path_factory, stack, path):
    base = tmp_path_factory.mktemp("stack")
    paths = layers(base, len(stack))
    for layer, entries in zip(paths, stack):
        _apply(layer, entries)
    flat = base / "flat"
    flat.mkdir()
    _flatten(paths, flat)
    wanted = "/" + "/".join(path)
    root = os.open(flat, os.O_PATH | os.O_DIRECTORY)
    try:
        try:
            expected = os.fstat(fd := _beneath.open_in_root(root, wanted, os.O_PATH))
            os.close(fd)
        except OSError:
            expected = None
        with view(paths) as v:
            try:
                resolved = v.resolve(wanted)
            except InvalidError:  # a loop, or ".." after a file: the kernel gives up too
                assert expected is None, wanted
                return
        try:
            got = os.stat(flat / resolved.lstrip("/"), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            got = None
        assert (got is None) == (expected is None), (wanted, resolved)
        if got is not None:
            assert (got.st_ino, got.st_dev) == (expected.st_ino, expected.st_dev), (wanted, resolved)
    finally:
        os.close(root)
