"""Issue 11, item 4: files a sandbox controls can neither hang nor exhaust the host.

The sandbox decides what a path is. A symlink to /dev/zero never ends, a FIFO blocks
whoever opens or reads it, a sparse file claims a terabyte, a file grows while it is
copied. Every read from a sandbox or a volume takes only a regular file, only what it
held when opened, up to a bound (pysandbox/bounds.py), and returns at once otherwise;
the async variants never block the event loop; a killed copy leaves nothing behind.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

import pysandbox as modal
from pysandbox.exception import SandboxFilesystemError, SandboxFilesystemFileTooLargeError

from ._inside import sh

pytestmark = pytest.mark.rootless

MiB = 1 << 20


@pytest.fixture
def hostile(sandboxes):
    sb = sandboxes()
    assert sh(sb, "ln -s /dev/zero /tmp/zero && mkfifo /tmp/fifo && head -c 3145728 /dev/urandom > /tmp/3mib")[0] == 0
    return sb


@pytest.mark.parametrize("path", ["/tmp/zero", "/tmp/fifo", "/dev/zero"])
def test_reading_a_device_or_fifo_is_refused_at_once(hostile, path, tmp_path):
    fs = hostile.filesystem
    for call in (lambda: fs.read_bytes(path), lambda: fs.read_text(path),
                 lambda: fs.copy_to_local(path, tmp_path / "out")):
        started = time.monotonic()
        with pytest.raises(SandboxFilesystemError, match="not a regular file"):
            call()
        assert time.monotonic() - started < 5
    with pytest.raises(OSError, match="not a regular file"):
        hostile.open(path, "rb")
    assert os.listdir(tmp_path) == []  # nothing was written, not even a temporary file


def test_async_reads_of_a_fifo_return_at_once(hostile):
    async def main():
        with pytest.raises(SandboxFilesystemError):
            await asyncio.wait_for(hostile.filesystem.read_bytes.aio("/tmp/fifo"), 10)

    asyncio.run(main())


def test_reads_and_copies_stop_at_their_bounds(hostile, tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_FILE_READ_MAX", str(1 * MiB))
    monkeypatch.setenv("PYSANDBOX_FILE_COPY_MAX", str(2 * MiB))
    with pytest.raises(SandboxFilesystemFileTooLargeError, match="PYSANDBOX_FILE_READ_MAX"):
        hostile.filesystem.read_bytes("/tmp/3mib")
    with pytest.raises(SandboxFilesystemFileTooLargeError, match="PYSANDBOX_FILE_COPY_MAX"):
        hostile.filesystem.copy_to_local("/tmp/3mib", tmp_path / "out")
    assert os.listdir(tmp_path) == []
    with hostile.open("/tmp/3mib", "rb") as f:
        assert len(f.read(MiB)) == MiB  # reading in pieces is fine


def test_a_file_growing_while_copied_gives_what_it_held(hostile, tmp_path):
    # Growing all the time, slowly enough to stay under the read bound while the test reads it.
    writer = hostile.exec("sh", "-c", "head -c 4194304 /dev/zero > /tmp/growing; "
                                      "while :; do head -c 65536 /dev/zero; sleep 0.01; done >> /tmp/growing")
    while not sh(hostile, "test $(stat -c %s /tmp/growing 2>/dev/null || echo 0) -gt 4194304")[0] == 0:
        time.sleep(0.01)
    started = time.monotonic()
    hostile.filesystem.copy_to_local("/tmp/growing", tmp_path / "copy")
    assert time.monotonic() - started < 30
    assert (tmp_path / "copy").stat().st_size >= 4 * MiB
    assert len(hostile.filesystem.read_bytes("/tmp/growing")) >= 4 * MiB
    writer.stdin.write_eof()


def test_a_killed_copy_leaves_no_file(hostile, tmp_path):
    assert sh(hostile, "head -c 400000000 /dev/zero > /tmp/big")[0] == 0
    script = ("import pysandbox as modal, sys\n"
              "modal.Sandbox.from_id(sys.argv[1]).filesystem.copy_to_local('/tmp/big', sys.argv[2])\n")
    copier = subprocess.Popen([sys.executable, "-c", script, hostile.object_id, str(tmp_path / "big")])
    while not _writing_into(copier.pid, tmp_path):  # killed mid-copy, not before or after
        assert copier.poll() is None, "the copy ended before it could be killed: make the file bigger"
    copier.send_signal(signal.SIGKILL)
    copier.wait()
    assert os.listdir(tmp_path) == [], "the killed copy left a file"


def _writing_into(pid, directory):
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{directory}/")
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.fixture
def hostile_volume(sandboxes):
    volume = modal.Volume.from_name("hostile-files", create_if_missing=True)  # removed after the test (conftest)
    sb = sandboxes(volumes={"/data": volume})
    assert sh(sb, "mkfifo /data/fifo && truncate -s 1T /data/sparse && echo fine > /data/ok "
                  "&& ln /data/ok /data/hard")[0] == 0
    return volume


@pytest.mark.parametrize("name", ["fifo", "sparse"])
def test_a_volume_fifo_or_huge_sparse_file_is_refused_at_once(hostile_volume, name, tmp_path):
    started = time.monotonic()
    with pytest.raises(OSError):
        list(hostile_volume.read_file(name))
    with pytest.raises(OSError):
        hostile_volume.copy_files([name], "copy")
    cli = subprocess.run([sys.executable, "-m", "pysandbox", "volume", "get", hostile_volume.name, name,
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert cli.returncode != 0 and cli.stderr
    assert time.monotonic() - started < 30
    assert os.listdir(tmp_path) == [] and "copy" not in [e.path for e in hostile_volume.listdir("/")]


def test_regular_and_hard_linked_volume_files_still_read(hostile_volume):
    assert b"".join(hostile_volume.read_file("ok")) == b"fine\n"
    assert b"".join(hostile_volume.read_file("hard")) == b"fine\n"
    hostile_volume.copy_files(["hard"], "copied")
    assert b"".join(hostile_volume.read_file("copied")) == b"fine\n"


def test_writing_over_a_volume_fifo_never_blocks(hostile_volume, tmp_path):
    # A sandbox leaves a FIFO where the host will write: the write replaces it, never opens it.
    local = tmp_path / "upload"
    local.write_text("uploaded")
    hostile_volume.copy_files(["ok"], "fifo")
    assert b"".join(hostile_volume.read_file("fifo")) == b"fine\n"

    async def replace_again():
        await asyncio.wait_for(hostile_volume.copy_files.aio(["hard"], "fifo"), 30)

    asyncio.run(replace_again())
    with hostile_volume.batch_upload(force=True) as batch:
        batch.put_file(local, "fifo")
    assert b"".join(hostile_volume.read_file("fifo")) == b"uploaded"
    with pytest.raises(FileExistsError):
        with hostile_volume.batch_upload() as batch:
            batch.put_file(local, "ok")


DEEP = 3000  # past Python's recursion limit, and past PATH_MAX as one path


def test_a_volume_tree_deeper_than_any_path_is_walked_copied_and_removed(sandboxes):
    # Red-team: a recursive walk of it used to end in RecursionError (or ENAMETOOLONG); every
    # host walk of sandbox-written trees goes one directory fd at a time (_beneath.walk).
    volume = modal.Volume.from_name("deep-tree", create_if_missing=True)
    sb = sandboxes(volumes={"/data": volume})
    make = f"import os\nos.chdir('/data')\nfor _ in range({DEEP}):\n    os.mkdir('d'); os.chdir('d')\nopen('leaf', 'w').write('x')"
    p = sb.exec("python3", "-c", make)
    assert p.wait() == 0, p.stderr.read()
    sb.terminate()
    entries = volume.listdir("/", recursive=True)
    assert len(entries) == DEEP + 1 and any(e.path.endswith("/leaf") for e in entries)
    volume.copy_files(["d"], "e", recursive=True)
    assert len(volume.listdir("/e", recursive=True)) == DEEP  # e is d: one level less below it
    volume.remove_file("e", recursive=True)
    volume.remove_file("d", recursive=True)
    assert volume.listdir("/") == []
    modal.Volume.objects.delete("deep-tree")
