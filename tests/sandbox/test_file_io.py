"""sb.open() and FileIO (Modal 1.5's file API), including attacks on path resolution."""

import asyncio
import io
import re

import pytest

from pysandbox._state import paths
from pysandbox.exception import DeprecationError

# Modal 1.5.5 warns at each call of this API (tests below check that); here it is the subject.
pytestmark = [pytest.mark.rootless, pytest.mark.filterwarnings("ignore::pysandbox.exception.DeprecationError")]


@pytest.mark.gvisor
def test_write_then_read_text_and_bytes(sb):
    with sb.open("/tmp/a.txt", "w") as f:
        f.write("héllo\nworld\n")
    with sb.open("/tmp/a.txt") as f:
        assert f.readline() == "héllo\n"
        assert f.read() == "world\n"
        assert f.read() == ""
    with sb.open("/tmp/a.txt", "rb") as f:
        assert f.readlines() == ["héllo\n".encode(), b"world\n"]
    assert sb.exec("cat", "/tmp/a.txt").stdout.read() == "héllo\nworld\n"


@pytest.mark.gvisor
def test_modes_append_exclusive_update_and_seek(sb):
    with sb.open("/tmp/b", "wb") as f:
        f.write(b"0123456789")
    with sb.open("/tmp/b", "ab") as f:
        f.write(b"AB")
    with sb.open("/tmp/b", "r+b") as f:
        f.seek(2)
        f.write(b"xx")
        f.seek(-3, 2)
        assert f.read() == b"9AB"
        f.seek(0)
        assert f.read(4) == b"01xx"
    with pytest.raises(FileExistsError):
        sb.open("/tmp/b", "x")
    with sb.open("/tmp/new", "x") as f:
        f.write("fresh")
    with sb.open("/tmp/new", "w+") as f:
        assert f.read() == ""  # truncated


@pytest.mark.gvisor
def test_relative_paths_use_the_workdir(sandboxes):
    sb = sandboxes(workdir="/repo")
    with sb.open("notes.txt", "w") as f:
        f.write("x")
    assert sb.exec("cat", "/repo/notes.txt").stdout.read() == "x"


@pytest.mark.parametrize("mode", ["", "b", "+", "z", "rt", "wt", "rw", "rr"])
@pytest.mark.gvisor
def test_invalid_modes(sb, mode):
    with pytest.raises(ValueError):
        sb.open("/tmp/x", mode)


@pytest.mark.gvisor
def test_handle_errors(sb):
    f = sb.open("/tmp/c", "w")
    with pytest.raises(io.UnsupportedOperation, match="not readable"):
        f.read()
    with pytest.raises(TypeError, match="str"):
        f.write(b"bytes in text mode")
    f.close()
    with pytest.raises(ValueError, match="closed"):
        f.write("x")
    r = sb.open("/tmp/c", "rb")
    with pytest.raises(io.UnsupportedOperation, match="not writeable"):
        r.write(b"x")
    with pytest.raises(ValueError, match="whence"):
        r.seek(0, 7)
    r.close()
    with pytest.raises(FileNotFoundError):
        sb.open("/tmp/missing")
    with pytest.raises(IsADirectoryError):
        sb.open("/tmp", "w")
    with pytest.raises(OSError, match="Read-only"):
        sb.open("/usr/bin/new-file", "w")


@pytest.mark.gvisor
def test_aio(sb):
    async def main():
        f = await sb.open.aio("/tmp/d", "w")
        async with f:
            await f.write.aio("async")
        g = await sb.open.aio("/tmp/d")
        data = await g.read.aio()
        await g.close.aio()
        return data

    assert asyncio.run(main()) == "async"


@pytest.mark.gvisor
def test_files_land_in_the_upper_dir_owned_by_the_sandbox_user(sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_WRITABLE_ROOT_MAX", "0")  # the root on the state disk, not a tmpfs
    sb = sandboxes()
    with sb.open("/data.bin", "wb") as f:
        f.write(b"z")
    host = paths.sandbox_dir(sb.object_id) / "upper" / "data.bin"
    assert host.read_bytes() == b"z"
    assert host.stat().st_uid != 0


@pytest.mark.gvisor
def test_fifo_cannot_block_the_agent_nor_the_caller(sb):
    sb.exec("mkfifo", "/tmp/fifo").wait()
    with pytest.raises(OSError, match="not a regular file"):  # refused at once: init never blocks on it
        sb.open("/tmp/fifo", "rb")
    assert sb.exec("echo", "still serving").stdout.read() == "still serving\n"


@pytest.mark.gvisor
def test_ls_mkdir_rm(sb):
    sb.mkdir("/w/x/y", parents=True)
    sb.mkdir("/w/x/y", parents=True)  # idempotent with parents
    with pytest.raises(FileExistsError):
        sb.mkdir("/w/x")
    with pytest.raises(FileNotFoundError):
        sb.mkdir("/nope/deeper")
    with sb.open("/w/x/y/f", "w") as f:
        f.write("x")
    sb.exec("ln", "-s", "/etc", "/w/etc-link").wait()
    assert sorted(sb.ls("/w")) == ["etc-link", "x"]
    assert sb.ls("/w/x/y") == ["f"]
    with pytest.raises(NotADirectoryError):
        sb.ls("/w/x/y/f")
    with pytest.raises(OSError, match="not empty"):
        sb.rm("/w/x")
    sb.rm("/w/x/y/f")
    sb.rm("/w", recursive=True)  # removes the link, never what it points to
    assert "w" not in sb.ls("/")
    assert "passwd" in sb.ls("/etc")
    with pytest.raises(FileNotFoundError):
        sb.rm("/w")


@pytest.mark.filterwarnings("default::pysandbox.exception.DeprecationError")
def test_each_call_of_the_old_file_api_warns_as_modals(sb):
    """Modal 1.5.5: open, ls, mkdir, rm and watch each raise a dated DeprecationError (a UserWarning)
    naming what replaces it, at the caller's line; blocking or .aio alike."""
    async def listing():
        return await sb.ls.aio("/tmp")

    calls = [
        ("2026-03-09", "`Sandbox.open()` is deprecated", lambda: sb.open("/tmp/old", "w").close()),
        ("2026-04-15", "`Sandbox.ls()` is deprecated", lambda: sb.ls("/tmp")),
        ("2026-04-15", "`Sandbox.mkdir()` is deprecated", lambda: sb.mkdir("/tmp/olddir")),
        ("2026-04-15", "`Sandbox.rm()` is deprecated", lambda: sb.rm("/tmp/olddir")),
        ("2026-05-08", "`Sandbox.watch()` is deprecated", lambda: list(sb.watch("/tmp", timeout=1))),
        ("2026-04-15", "`Sandbox.ls()` is deprecated", lambda: asyncio.run(listing())),
    ]
    for date, words, call in calls:
        with pytest.warns(DeprecationError, match=f"^{date}: {re.escape(words)}") as caught:
            call()
        assert [w.filename for w in caught] == [__file__], words
