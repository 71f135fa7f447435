"""sb.filesystem (Modal 1.6's file API)."""

import asyncio

import pytest

import pysandbox as modal
from pysandbox.exception import (
    InvalidError,
    NotFoundError,
    SandboxFilesystemDirectoryNotEmptyError,
    SandboxFilesystemIsADirectoryError,
    SandboxFilesystemNotADirectoryError,
    SandboxFilesystemNotFoundError,
    SandboxFilesystemPathAlreadyExistsError,
    SandboxFilesystemPermissionError,
)

pytestmark = pytest.mark.rootless


@pytest.mark.gvisor
def test_read_write_round_trip(sb):
    fs = sb.filesystem
    assert sb.filesystem is fs
    fs.write_text("héllo\n", "/data/deep/a.txt")  # parents are created
    assert fs.read_text("/data/deep/a.txt") == "héllo\n"
    fs.write_bytes(b"\x00\xff" * 1000, "/data/deep/a.txt")  # overwrites
    assert fs.read_bytes("/data/deep/a.txt") == b"\x00\xff" * 1000
    assert sb.exec("wc", "-c", "/data/deep/a.txt").stdout.read().split()[0] == "2000"
    with pytest.raises(TypeError):
        fs.write_bytes("text", "/x")
    with pytest.raises(TypeError):
        fs.write_text(b"bytes", "/x")


@pytest.mark.gvisor
def test_paths_must_be_absolute(sb):
    for call in (lambda: sb.filesystem.read_bytes("rel"), lambda: sb.filesystem.write_text("x", "rel"),
                 lambda: sb.filesystem.list_files("rel"), lambda: sb.filesystem.stat("rel")):
        with pytest.raises(InvalidError, match="absolute"):
            call()


@pytest.mark.gvisor
def test_errors_are_modal_classes(sb):
    fs = sb.filesystem
    with pytest.raises(SandboxFilesystemNotFoundError):
        fs.read_bytes("/missing")
    with pytest.raises(SandboxFilesystemIsADirectoryError):
        fs.read_bytes("/tmp")
    with pytest.raises(SandboxFilesystemPermissionError):
        fs.write_text("x", "/usr/new")
    fs.write_text("x", "/tmp/file")
    with pytest.raises(SandboxFilesystemNotADirectoryError):
        fs.list_files("/tmp/file")
    with pytest.raises(SandboxFilesystemPathAlreadyExistsError):
        fs.make_directory("/tmp/file")
    fs.make_directory("/tmp/d/e")
    fs.make_directory("/tmp/d/e")  # idempotent
    with pytest.raises(SandboxFilesystemPathAlreadyExistsError):
        fs.make_directory("/tmp/d/e", create_parents=False)
    with pytest.raises(SandboxFilesystemNotFoundError):
        fs.make_directory("/tmp/nope/x", create_parents=False)
    with pytest.raises(SandboxFilesystemDirectoryNotEmptyError):
        fs.remove("/tmp/d")
    fs.remove("/tmp/d", recursive=True)
    with pytest.raises(SandboxFilesystemNotFoundError):
        fs.stat("/tmp/d")
    assert not issubclass(SandboxFilesystemNotFoundError, OSError)


@pytest.mark.gvisor
def test_stat_and_list_files(sb):
    fs = sb.filesystem
    fs.write_text("12345", "/w/f")
    sb.exec("ln", "-s", "/etc/passwd", "/w/link").wait()
    fs.make_directory("/w/sub")
    info = fs.stat("/w/f")
    assert info.is_file() and info.size == 5 and info.name == "f" and info.path == "/w/f"
    assert info.owner == "root" and info.permissions.startswith("-rw")
    link = fs.stat("/w/link")
    assert link.is_symlink() and link.symlink_target == "/etc/passwd"
    entries = {e.name: e for e in fs.list_files("/w")}
    assert set(entries) == {"f", "link", "sub"} and entries["sub"].is_dir()


@pytest.mark.gvisor
def test_copy_from_and_to_local(sb, tmp_path):
    local = tmp_path / "in.bin"
    local.write_bytes(b"payload" * 10000)
    sb.filesystem.copy_from_local(local, "/up/in.bin")
    assert sb.filesystem.read_bytes("/up/in.bin") == local.read_bytes()
    out = tmp_path / "out" / "copy.bin"
    sb.filesystem.copy_to_local("/up/in.bin", out)
    assert out.read_bytes() == local.read_bytes()
    out.write_bytes(b"old")
    with pytest.raises(SandboxFilesystemNotFoundError):
        sb.filesystem.copy_to_local("/up/missing", out)
    assert out.read_bytes() == b"old"  # not clobbered by a failed copy
    assert [p.name for p in out.parent.iterdir()] == ["copy.bin"]  # no temp file left
    with pytest.raises(FileNotFoundError):
        sb.filesystem.copy_from_local(tmp_path / "absent", "/up/x")


@pytest.mark.gvisor
def test_aio_and_gone_sandbox(sandboxes):
    sb = sandboxes()

    async def main():
        await sb.filesystem.write_text.aio("a", "/a")
        return await sb.filesystem.read_text.aio("/a")

    assert asyncio.run(main()) == "a"
    sb.terminate(wait=True)
    with pytest.raises(NotFoundError, match="unavailable"):
        modal.Sandbox.from_id(sb.object_id).filesystem.read_text("/a")


def test_large_copies_stream_with_flat_memory(sb, tmp_path):
    import resource

    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB (sparse on the host; real bytes inside the sandbox)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sb.filesystem.copy_from_local(big, "/tmp/big")
    sb.filesystem.copy_to_local("/tmp/big", tmp_path / "back")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert (tmp_path / "back").stat().st_size == 1 << 30
    assert grown_kib < 64 * 1024, f"peak RSS grew by {grown_kib} KiB"
    with sb.open("/tmp/big", "rb") as f:  # FileIO reads in bounded pieces too
        f.seek(-4, 2)
        assert f.read() == b"\0" * 4
