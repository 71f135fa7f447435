"""Typical Modal code, checked with `mypy --strict` by test_types.py (never run): every assert_type
must hold, and nothing may be an error."""

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Coroutine, Dict, Iterator, List, Optional

from typing_extensions import assert_type

import pysandbox as modal
from pysandbox import ContainerProcess, Sandbox, StreamReader, StreamWriter
from pysandbox.types import FileInfo, FileWatchEvent, SandboxStats


def blocking(app: modal.App) -> None:
    image = modal.Image.debian_slim(python_version="3.12").pip_install("requests").env({"A": "1"})
    assert_type(image, modal.Image)
    secret = modal.Secret.from_dict({"TOKEN": "x"})
    environment: Dict[str, str] = {"C": "3"}  # a dict[str, str] where env= takes Optional values
    sb_env = Sandbox.create(app=app, env=environment)
    sb_env.exec("env", env=environment).wait()
    assert_type(secret, modal.Secret)
    volume = modal.Volume.from_name("data", create_if_missing=True)
    assert_type(volume, modal.Volume)

    sb = Sandbox.create("sleep", "100", app=app, image=image, secrets=[secret], volumes={"/data": volume},
                        timeout=600, workdir="/tmp", env={"B": "2"}, cpu=0.5, memory=(256, 512), region="us-east",
                        readiness_probe=modal.Probe.with_tcp(8080))
    assert_type(sb, Sandbox)
    assert_type(sb.object_id, str)

    text_process = sb.exec("echo", "hi")
    assert_type(text_process, ContainerProcess[str])
    assert_type(text_process.stdout, StreamReader[str])
    assert_type(text_process.stdout.read(), str)
    for line in text_process.stderr:
        assert_type(line, str)
    assert_type(text_process.wait(), int)
    assert_type(text_process.poll(), Optional[int])
    assert_type(text_process.returncode, int)
    assert_type(text_process.stdin, StreamWriter)
    text_process.stdin.write(b"data")
    text_process.stdin.write("text")
    text_process.stdin.write_eof()
    text_process.stdin.drain()

    bytes_process = sb.exec("cat", "/bin/true", text=False, timeout=10, workdir="/", stdout=modal.StreamType.PIPE)
    assert_type(bytes_process, ContainerProcess[bytes])
    assert_type(bytes_process.stdout.read(), bytes)
    for chunk in bytes_process.stdout:
        assert_type(chunk, bytes)
    assert_type(Sandbox.exec(sb, "true"), ContainerProcess[Any])
    text_again = sb.exec("true", text=True, pty=True)
    assert_type(text_again, ContainerProcess[str])

    flag: bool = len(sb.ls("/")) > 0
    assert_type(sb.exec("true", text=flag), ContainerProcess[Any])

    assert_type(sb.stdout, StreamReader[str])
    assert_type(sb.stdout.read(), str)
    assert_type(sb.poll(), Optional[int])
    assert_type(sb.wait(raise_on_termination=False), None)
    assert_type(sb.returncode, Optional[int])
    assert_type(sb.terminate(), Optional[int])
    assert_type(sb.stats(), SandboxStats)
    assert_type(sb.get_tags(), Dict[str, str])
    sb.set_tags({"k": "v"})
    assert_type(sb.tunnels(), Dict[int, modal.Tunnel])

    fs = sb.filesystem
    fs.write_text("hello", "/tmp/a.txt")
    fs.write_bytes(b"\x00", "/tmp/b.bin")
    fs.copy_from_local(Path("local.txt"), "/tmp/c.txt")
    fs.copy_to_local("/tmp/c.txt", "copy.txt")
    assert_type(fs.read_text("/tmp/a.txt"), str)
    assert_type(fs.read_bytes("/tmp/a.txt"), bytes)
    assert_type(fs.stat("/tmp/a.txt"), FileInfo)
    assert_type(fs.list_files("/tmp"), List[FileInfo])
    fs.make_directory("/tmp/d", create_parents=True)
    fs.remove("/tmp/d", recursive=True)
    for event in fs.watch("/tmp", timeout=1):
        assert_type(event, FileWatchEvent)
    assert_type(sb.ls("/"), List[str])
    sb.mkdir("/tmp/e", parents=True)
    sb.rm("/tmp/e")
    with sb.open("/tmp/a.txt") as f:
        f.read()

    assert_type(sb.snapshot_filesystem(), modal.Image)
    for listed in Sandbox.list(app_id=app.app_id):
        assert_type(listed, Sandbox)
    assert_type(Sandbox.from_id(sb.object_id), Sandbox)
    assert_type(Sandbox.from_name("app", "name"), Sandbox)

    with modal.Volume.ephemeral() as scratch:
        assert_type(scratch, modal.Volume)
    with volume.batch_upload() as upload:
        upload.put_file(b"x", "/x")
    for entry in volume.iterdir("/"):
        assert_type(entry, modal.FileEntry)
    for piece in volume.read_file("/x"):
        assert_type(piece, bytes)
    assert_type(volume.listdir("/"), List[modal.FileEntry])
    volume.commit()


def app_and_run() -> None:
    app = modal.App.lookup("my-app", create_if_missing=True)
    assert_type(app, modal.App)
    with modal.App("ephemeral").run() as running:
        assert_type(running, modal.App)
        blocking(running)


async def asynchronous(app: modal.App) -> None:
    sb = await assert_type(Sandbox.create.aio(app=app), Coroutine[Any, Any, Sandbox])
    text_process = await sb.exec.aio("echo", "hi")
    assert_type(text_process, ContainerProcess[str])
    assert_type(await text_process.stdout.read.aio(), str)
    async for line in text_process.stdout:
        assert_type(line, str)
    assert_type(await text_process.wait.aio(), int)
    assert_type(await text_process.poll.aio(), Optional[int])
    bytes_process = await sb.exec.aio("cat", "/bin/true", text=False)
    assert_type(bytes_process, ContainerProcess[bytes])
    assert_type(await bytes_process.stdout.read.aio(), bytes)
    async for chunk in bytes_process.stdout:
        assert_type(chunk, bytes)
    await text_process.stdin.drain.aio()
    assert_type(await sb.filesystem.read_text.aio("/etc/hostname"), str)
    watched = sb.filesystem.watch.aio("/tmp")
    assert_type(watched, AsyncIterator[FileWatchEvent])
    listed = Sandbox.list.aio()
    assert_type(listed, AsyncIterator[Sandbox])
    assert_type(await sb.wait.aio(), None)
    assert_type(await sb.terminate.aio(wait=True), Optional[int])
    async with modal.Volume.ephemeral.aio() as scratch:
        assert_type(scratch, modal.Volume)
    async with modal.App("ephemeral").run.aio() as running:
        assert_type(await Sandbox.create.aio(app=running), Sandbox)
    assert_type(await modal.App.lookup.aio("my-app"), modal.App)
    assert_type(await Sandbox.from_id.aio(sb.object_id), Sandbox)


def iterate(reader: StreamReader[str]) -> Iterator[str]:
    return iter(reader)


if __name__ == "__main__":
    asyncio.run(asynchronous(modal.App.lookup("my-app", create_if_missing=True)))
