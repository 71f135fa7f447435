"""mount_image, unmount_image and snapshot_directory reach into a running sandbox: the host
joins its namespaces (sandbox-mount) and resolves paths there. Whatever the sandbox plants,
nothing of this reaches past the sandbox.

* A symlink at (or on the way to) the mount path resolves inside the sandbox's root: it can
  move the mount within the sandbox, never onto a host path (host /etc stays as it was), and
  magic links (/proc/self/root) are refused.
* Sandbox code still cannot mount or unmount anything, the image's mount included.
* unmount_image detaches only a mount mount_image made, and only that very mount: not /proc,
  not a mask, not a directory swapped in at the path.
* snapshot_directory copies symlinks as symlinks (never what they point to), does not cross
  into other mounts (a volume), and is bounded in bytes and entries.
"""

import os

import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox._aio import run_sync
from pysandbox.exception import InvalidError, ResourceExhaustedError
from pysandbox.image import store

from ._inside import py_ok, sh
from .test_25_malformed_protocol import _init_fds

pytestmark = pytest.mark.rootless


@pytest.fixture(scope="module")
def marked(app, runner):
    """An image holding one file, `marker`."""
    sb = modal.Sandbox.create(app=app)
    assert sh(sb, "mkdir /m && echo image-file > /m/marker")[0] == 0
    image = sb.snapshot_directory("/m")
    sb.terminate()
    return image


def _host_mounts():
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f)


@pytest.mark.parametrize("planted", ["ln -s /etc /data", "ln -s ../../../../../../etc /data",
                                     "mkdir /a && ln -s / /a/up && ln -s /a/up/etc /data"])
def test_a_symlink_at_the_mount_path_leads_only_inside_the_sandbox(sandboxes, marked, planted):
    sb = sandboxes()
    assert sh(sb, planted)[0] == 0
    before = _host_mounts()
    sb.mount_image("/data", marked)
    assert _host_mounts() == before  # nothing mounted in the host's namespace
    assert not os.path.exists("/etc/marker")
    assert sh(sb, "cat /etc/marker")[1] == "image-file\n"  # the sandbox's own /etc got it
    sb.unmount_image("/data")
    assert sh(sb, "test -e /etc/marker || echo gone")[1] == "gone\n"


def test_magic_links_are_refused(sandboxes, marked):
    sb = sandboxes()
    assert sh(sb, "ln -s /proc/self/root/etc /data && ln -s /proc/1/cwd /cwd")[0] == 0
    for path in ("/data", "/cwd/x", "/proc/self/root/tmp"):
        with pytest.raises(InvalidError):
            sb.mount_image(path, marked)
        with pytest.raises(InvalidError):
            sb.snapshot_directory(path)


def test_sandbox_code_cannot_mount_or_unmount_the_image(sandboxes, marked):
    sb = sandboxes()
    sb.mount_image("/mnt/img", marked)
    assert sh(sb, "umount /mnt/img 2>/dev/null; umount -l /mnt/img 2>/dev/null; cat /mnt/img/marker")[1] == \
        "image-file\n"
    out = py_ok(sb, """
        print(call("umount2", b"/mnt/img", 2), call("open_tree", -100, b"/mnt/img", 1),
              call("fsopen", b"overlay", 0), call("mount", b"none", b"/mnt", b"tmpfs", 0, 0))
        print([l.split()[5] for l in open("/proc/self/mountinfo") if l.split()[4] == "/mnt/img"])
    """)
    assert out.splitlines()[0] == "EPERM EPERM EPERM EPERM"
    assert "nosuid" in out.splitlines()[1] and "nodev" in out.splitlines()[1]


def test_unmount_detaches_only_what_mount_image_made(sandboxes, marked):
    sb = sandboxes()
    for path in ("/proc", "/dev", "/etc/shadow", "/tmp"):
        with pytest.raises(InvalidError, match="exact path"):
            sb.unmount_image(path)
    sb.mount_image("/p/m", marked)
    # The sandbox moves the mount away and puts a plain directory at its path.
    assert sh(sb, "mv /p /q && mkdir -p /p/m")[0] == 0
    with pytest.raises(InvalidError, match="not the mount"):
        sb.unmount_image("/p/m")
    assert sh(sb, "cat /q/m/marker; ls /proc/self/status")[1] == "image-file\n/proc/self/status\n"


def test_snapshot_directory_copies_links_not_their_targets(sandboxes):
    with modal.Volume.ephemeral() as vol:
        sb = sandboxes(volumes={"/d/vol": vol})
        assert sh(sb, "echo secret > /d/vol/inside-volume && ln -s /etc/shadow /d/shadow && "
                      "ln -s / /d/root && mkfifo /d/fifo && echo ok > /d/file")[0] == 0
        image = sb.snapshot_directory("/d")
    rootfs = store.layer_dir(image.object_id[3:]) / "rootfs"
    assert sorted(os.listdir(rootfs)) == ["fifo", "file", "root", "shadow"]  # the volume was not crossed
    assert os.readlink(rootfs / "shadow") == "/etc/shadow" and os.readlink(rootfs / "root") == "/"
    assert os.lstat(rootfs / "file").st_uid == settings.sandbox_owner()[0]  # written as sandbox root


@pytest.mark.parametrize("variable, script", [
    ("PYSANDBOX_SNAPSHOT_DIRECTORY_MAX", "head -c 100000 /dev/zero > /big/f"),
    ("PYSANDBOX_SNAPSHOT_DIRECTORY_ENTRIES_MAX", "for i in $(seq 50); do touch /big/$i; done"),
])
def test_snapshot_directory_is_bounded(sandboxes, monkeypatch, variable, script):
    sb = sandboxes()
    assert sh(sb, f"mkdir /big && {script}")[0] == 0
    temps = _build_dirs()
    monkeypatch.setenv(variable, "20")
    with pytest.raises(ResourceExhaustedError, match=variable):
        sb.snapshot_directory("/big")
    assert _build_dirs() == temps  # no half-copied layer left


def _build_dirs():
    """The store's build directories; not the retired layers beside them, which the session's other tests
    retire (a rebuild) and remove (gc) at any moment."""
    tmp = store.root() / "tmp"
    return sorted(e for e in os.listdir(tmp) if f".{store.RETIRED}-" not in e) if tmp.exists() else []


def test_init_keeps_no_pidfd_it_hands_out(sb):
    """Each mount asks init for a pidfd: 200 of them leave init with no more fds than before."""
    os.close(run_sync(sb._client().pidfd()))  # init serves: it runs
    before = _init_fds(sb)
    for _ in range(200):
        os.close(run_sync(sb._client().pidfd()))
    assert before is None or _init_fds(sb) <= before + 2
