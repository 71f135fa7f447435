# ruff: noqa: F841  (the assignments are the mistakes under test)
"""Mistakes a type checker must catch: test_types.py runs `mypy --strict` on this file and expects exactly
the errors marked `# E: <code>` (on their lines), and no others."""

import pysandbox as modal
from pysandbox import ContainerProcess, Sandbox


def mistakes(app: modal.App, sb: Sandbox) -> None:
    Sandbox.create(app="my-app")  # E: arg-type
    Sandbox.create("python", 3, app=app)  # E: arg-type
    Sandbox.create(app=app, timeout="10m")  # E: arg-type
    Sandbox.create(app=app, no_such_option=True)  # E: call-arg
    Sandbox.create(app=app, image="python:3.12")  # E: arg-type
    Sandbox.create(app=app, cpu="2")  # E: arg-type
    sb.exec(["ls", "-l"])  # E: call-overload
    sb.exec("ls", text="yes")  # E: call-overload
    sb.exec("ls", timeout=1.5)  # E: call-overload
    text_output: bytes = sb.exec("ls").stdout.read()  # E: assignment
    bytes_output: str = sb.exec("ls", text=False).stdout.read()  # E: assignment
    wrong_process: ContainerProcess[str] = sb.exec("ls", text=False)  # E: assignment
    code: str = sb.exec("ls").wait()  # E: assignment
    sb.exec("ls").poll() + 1  # E: operator
    sb.wait(raise_on_termination="no")  # E: arg-type
    sb.terminate(True)  # E: call-arg
    sb.filesystem.read_text(42)  # E: arg-type
    sb.filesystem.write_text(b"bytes", "/tmp/a")  # E: arg-type
    sb.filesystem.write_bytes("text", "/tmp/a")  # E: arg-type
    sb.filesystem.copy_from_local(3, "/tmp/a")  # E: arg-type
    modal.Volume.from_name(7)  # E: arg-type
    modal.Secret.from_dict({"A": 1})  # E: dict-item
    modal.Image.debian_slim(python_version=3.12)  # E: arg-type
    modal.App.lookup("my-app", create_if_missing="yes")  # E: arg-type


async def async_mistakes(sb: Sandbox) -> None:
    await sb.exec.aio(["ls"])  # E: call-overload
    await sb.exec.aio("ls", text=False).stdout  # E: attr-defined
    output: bytes = await (await sb.exec.aio("ls")).stdout.read.aio()  # E: assignment
    code: int = sb.wait.aio()  # E: assignment
    await Sandbox.create.aio(app="my-app")  # E: arg-type
    await sb.filesystem.read_text.aio(1)  # E: arg-type
