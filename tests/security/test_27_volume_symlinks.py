"""Issue 11, item 2: storage that sandboxes write (a volume) never leads the host to
mount anything but that storage.

The attack: a sandbox plants a symlink in a volume (`ln -s / /data/work`), and a
later sandbox mounts the volume with sub_path="work": resolved on the host, the
bind would be the host's root, read-write. The host now opens the sub_path without
following any symlink, and the runner's mount must be that directory (checked by
the supervisor's staging for root callers and by sandbox-init before anything runs);
volume mounts are nosuid and nodev.
"""

import os

import pytest

import pysandbox as modal
from pysandbox.exception import ConflictError, InvalidError

from ._inside import py, sh


@pytest.fixture
def volume():
    with modal.Volume.ephemeral() as vol:
        yield vol


@pytest.mark.rootless
@pytest.mark.parametrize("planted", ["ln -s / /data/work", "ln -s /etc /data/work",
                                     "mkdir -p /data/a && ln -s / /data/a/b"])
def test_a_planted_symlink_is_refused_as_a_sub_path(sandboxes, volume, planted):
    writer = sandboxes(volumes={"/data": volume})
    assert sh(writer, planted)[0] == 0
    sub_path = "a/b/etc" if "a/b" in planted else "work"
    with pytest.raises(InvalidError, match="symlink"):
        sandboxes(volumes={"/mnt/v": volume.with_mount_options(sub_path=sub_path)})


@pytest.mark.rootless
def test_a_symlink_swapped_in_after_validation_never_reaches_a_sandbox(sandboxes, volume):
    # A sandbox swaps /data/work between a directory (holding a marker) and a symlink to
    # the host's root, as fast as it can, while sandboxes are created on sub_path="work".
    writer = sandboxes(volumes={"/data": volume})
    assert sh(writer, "mkdir /data/work && touch /data/work/the-real-volume && ln -s / /data/decoy")[0] == 0
    swapper = writer.exec("python3", "-c", (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "while True:\n"
        "    libc.renameat2(-100, b'/data/work', -100, b'/data/decoy', 2)\n"  # RENAME_EXCHANGE
    ))
    seen, refused = [], 0
    try:
        # Each create must find the real directory at every one of its checks to start, so on a
        # loaded machine few do: go on until both outcomes were seen (at least 40 creates).
        for attempt in range(400):
            if attempt >= 40 and seen and refused:
                break
            try:
                sb = sandboxes("sleep", "30", volumes={"/mnt/v": volume.with_mount_options(sub_path="work")})
                code, out = sh(sb, "ls /mnt/v")
            except (InvalidError, ConflictError):
                refused += 1  # refused at create, or the sandbox refused to start: both fine
                continue
            if code == 0:
                seen.append(out.split())
    finally:
        writer.terminate(wait=True)  # the swapper must be gone before the volume is removed
    assert swapper.poll() in (None, 137), "the swapper stopped before the creates were done"  # 137: terminated
    print(f"{len(seen)} sandboxes saw the volume, {refused} were refused")
    assert seen and refused, "the race never happened: the test proves nothing"
    for listing in seen:
        assert listing == ["the-real-volume"], f"a sandbox saw the host through the volume: {listing}"


@pytest.mark.rootless
def test_volume_mounts_are_nosuid_and_nodev(sandboxes, volume):
    with modal.Volume.ephemeral() as other:
        sb = sandboxes(volumes={"/data": volume, "/sub": other.with_mount_options(sub_path="x")})
        out = py(sb, """
            for line in open('/proc/self/mountinfo'):
                fields = line.split()
                if fields[4] in ('/data', '/sub'):
                    print(fields[4], fields[5])
        """)[1]
    options = dict(line.split() for line in out.splitlines())
    assert set(options) == {"/data", "/sub"}
    for path, flags in options.items():
        assert {"nosuid", "nodev"} <= set(flags.split(",")), (path, flags)


def test_a_device_node_in_a_volume_cannot_be_opened(sandboxes, volume):
    # Not marked rootless: an unprivileged caller cannot make a device node at all.
    with volume._root() as root:  # as a host-side attacker with root would: /dev/mem's numbers
        os.mknod("mem", 0o666 | 0o020000, os.makedev(1, 1), dir_fd=root)
    sb = sandboxes(volumes={"/data": volume})
    code, out = sh(sb, "head -c 1 /data/mem")
    assert code != 0 and "Permission denied" in out


@pytest.mark.rootless
def test_volume_data_is_still_shared_both_ways(sandboxes, volume):
    first = sandboxes(volumes={"/data": volume.with_mount_options(sub_path="deep/er")})
    assert sh(first, "echo hello > /data/f")[0] == 0
    second = sandboxes(volumes={"/v": volume})
    assert sh(second, "cat /v/deep/er/f")[1] == "hello\n"


SWAPPER = """
import ctypes, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
os.chdir("/data")
target = sys.argv[1]
os.makedirs("x/victim", exist_ok=True)
dfd = os.open("x/victim", os.O_RDONLY | os.O_DIRECTORY)
def filler():  # keeps x/victim non-empty, so the host's removal of it keeps failing and retrying
    i = 0
    while True:
        try:
            os.close(os.open(f"f{i % 64}", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dfd))
        except OSError:
            pass
        i += 1
threading.Thread(target=filler, daemon=True).start()
print("ready", flush=True)
while True:
    for name in (b"x", b"L"):
        libc.symlink(target.encode(), name)
    libc.renameat2(-100, b"x", -100, b"L", 2)  # RENAME_EXCHANGE: x is a directory, then a symlink
"""


@pytest.mark.rootless
def test_deleting_a_volume_a_sandbox_is_changing_never_touches_the_host(sandboxes, tmp_path):
    # A sandbox swaps a directory of its volume with a symlink to a host directory while the host
    # removes the volume: nothing outside the volume may be deleted or chmodded.
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "victim").mkdir()
    (victim / "victim" / "keep.txt").write_text("keep")
    tmp_path.chmod(0o755)
    volume = modal.Volume.from_name("swapped-while-deleted", create_if_missing=True)
    sb = sandboxes("python3", "-c", SWAPPER, str(victim), volumes={"/data": volume})
    assert next(iter(sb.stdout)) == "ready\n"
    try:
        modal.Volume.objects.delete(volume.name)
    except OSError:
        pass  # the sandbox keeps refilling it: the removal may give up, but only on the volume
    assert sb.poll() is None  # it was swapping all along
    assert (victim / "victim" / "keep.txt").read_text() == "keep"
    assert victim.stat().st_mode & 0o777 == 0o755 and (victim / "victim").stat().st_mode & 0o777 == 0o755
