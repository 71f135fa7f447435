"""snapshot_filesystem copies a tree sandbox code wrote (its upper directory), under every runner and
gVisor: whatever it planted there is copied as what it is, by `cp -a` in a helper sandbox, never
followed by the host (image/snapshot.py).

* Symlinks (to host secrets, to `/`, upwards, magic links) stay symlinks with their targets; a
  hardlink stays a hardlink; a FIFO stays a FIFO (nothing opens it, so nothing blocks; under
  gVisor a FIFO never reaches the upper: its Sentry keeps it).
* No device reaches the layer but overlayfs's whiteouts (0/0): a device node made inside either
  fails or is not a device the host would honour.
* A sparse terabyte stays sparse: the copy takes no disk for its holes.
* A directory swapped for a symlink to `/` while the copy runs: each snapshot either fails
  cleanly or holds one of the two, never the helper's root copied through the link.
"""

import os
import stat

import pytest

from pysandbox.exception import ImageBuildError
from pysandbox.image import store

from ._inside import sh

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

TiB = 1 << 40
PLANTED = ("set -e; cd /srv; ln -s /etc/shadow shadow; ln -s / root; ln -s ../../../../../etc up; "
           "ln -s /proc/self/root magic; echo mine > mine; ln mine hard; mkfifo fifo; truncate -s 1T sparse; "
           "mknod null c 1 3 2>/dev/null || true; mkdir swap; echo inside > swap/file")
# Swaps /srv/swap between its directory and a symlink to / as fast as it can, until the sandbox ends.
SWAPPER = "cd /srv; while :; do mv swap swapd && ln -s / swap && rm swap && mv swapd swap; done"


def _layer_root(image):
    return store.layer_dir(store.layer_of(image.object_id)) / "rootfs"


def _walk(root):
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            yield os.path.join(directory, name), os.lstat(os.path.join(directory, name))


def _devices(root):
    return [(path, os.major(st.st_rdev), os.minor(st.st_rdev)) for path, st in _walk(root)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)]


def test_what_the_sandbox_planted_is_copied_as_what_it_is(debian, sandboxes, runner):
    sb = sandboxes(image=debian)
    assert sh(sb, PLANTED + "; rm /etc/issue")[0] == 0
    srv = _layer_root(sb.snapshot_filesystem()) / "srv"
    assert {name: os.readlink(srv / name) for name in ("shadow", "root", "up", "magic")} == \
        {"shadow": "/etc/shadow", "root": "/", "up": "../../../../../etc", "magic": "/proc/self/root"}
    assert (srv / "mine").read_text() == "mine\n" and os.lstat(srv / "mine").st_ino == os.lstat(srv / "hard").st_ino
    if runner == "gvisor":  # its FIFOs live in the Sentry (--host-fifo=none), never in the upper (docs/RUNNERS.md)
        assert not os.path.lexists(srv / "fifo")
    else:
        assert stat.S_ISFIFO(os.lstat(srv / "fifo").st_mode)
    sparse = os.lstat(srv / "sparse")
    assert sparse.st_size == TiB and sparse.st_blocks * 512 < (1 << 20)
    devices = _devices(srv.parent)
    assert devices == [(str(srv.parent / "etc" / "issue"), 0, 0)]  # the whiteout alone; no node 1:3


def test_a_directory_swapped_for_a_symlink_during_the_copy_is_never_followed(debian, sandboxes):
    sb = sandboxes(image=debian)
    assert sh(sb, PLANTED)[0] == 0
    swapper = sb.exec("sh", "-c", SWAPPER)
    outcomes = []
    for _ in range(5):
        try:
            image = sb.snapshot_filesystem()
        except ImageBuildError:  # cp met a name that vanished: a clean failure, nothing published
            outcomes.append("failed")
            continue
        swap = _layer_root(image) / "srv" / "swap"
        swapd = _layer_root(image) / "srv" / "swapd"
        for path in (swap, swapd):
            if os.path.islink(path):
                outcomes.append(os.readlink(path))
            elif os.path.isdir(path):
                assert sorted(os.listdir(path)) == ["file"]  # the sandbox's own directory, not the helper's root
                outcomes.append("dir")
        assert sum(st.st_blocks * 512 for _, st in _walk(_layer_root(image))) < (64 << 20)
    assert swapper.poll() is None  # it swapped all along; the sandboxes fixture ends it
    assert len(outcomes) >= 5 and set(outcomes) <= {"failed", "dir", "/"}
