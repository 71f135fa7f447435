"""Sandbox lifecycle: entrypoints, wait/poll/returncode, terminate, timeouts, detach, from_id."""

import subprocess
import sys
import textwrap

import pytest

import pysandbox as modal
from pysandbox._state import paths, records
from pysandbox._state.files import is_well_formed_id
from pysandbox.exception import (
    ClientClosed,
    ConflictError,
    InvalidError,
    NotFoundError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)

from ..conftest import assert_torn_down

pytestmark = pytest.mark.rootless


@pytest.mark.gvisor
def test_object_id_shape(sb):
    assert is_well_formed_id(sb.object_id, "sb-")


@pytest.mark.gvisor
def test_entrypoint_output_and_exit_code(sandboxes):
    sb = sandboxes("sh", "-c", "echo out; echo err >&2; exit 7")
    assert sb.stdout.read() == "out\n"
    assert sb.stderr.read() == "err\n"
    sb.wait()
    assert sb.returncode == 7
    assert sb.poll() == 7


@pytest.mark.gvisor
def test_entrypoint_stdin(sandboxes):
    sb = sandboxes("cat")
    sb.stdin.write("hi\n")
    sb.stdin.write_eof()
    sb.stdin.drain()
    assert sb.stdout.read() == "hi\n"
    sb.wait()
    assert sb.returncode == 0


@pytest.mark.gvisor
def test_entrypoint_lines_stream_live(sandboxes):
    sb = sandboxes("sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done")
    assert list(sb.stdout) == ["1\n", "2\n", "3\n"]


@pytest.mark.gvisor
def test_poll_none_while_running(sb):
    assert sb.poll() is None
    assert sb.returncode is None


@pytest.mark.gvisor
def test_terminate_gives_137_and_wait_raises(sb):
    sb.terminate()
    with pytest.raises(SandboxTerminatedError):
        sb.wait()
    assert sb.returncode == 137
    sb.wait(raise_on_termination=False)
    assert sb.terminate(wait=True) == 137  # a no-op on a finished sandbox
    assert_torn_down(sb.object_id, sb._record.supervisor)


@pytest.mark.gvisor
def test_terminate_wait_returns_code(sb):
    assert sb.terminate(wait=True) == 137


def test_wait_after_the_exit_record_was_read_still_waits_for_the_supervisor(sb):
    """The supervisor writes its exit record, then exits: a handle that read the record first
    (poll, returncode) must not return from wait() while the supervisor still runs. strace
    holds the supervisor's exit for a second, which makes the window wide."""
    tracer = subprocess.Popen(
        ["strace", "-p", str(sb._record.supervisor.pid), "-o", "/dev/null", "-e", "trace=exit_group",
         "-e", "inject=exit_group:delay_enter=1000000"], stderr=subprocess.PIPE, text=True)
    try:
        assert "attached" in tracer.stderr.readline()
        sb.terminate()
        while sb.poll() is None:
            pass
        sb.wait(raise_on_termination=False)
        assert_torn_down(sb.object_id, sb._record.supervisor)
    finally:
        tracer.kill()
        tracer.wait()


@pytest.mark.gvisor
def test_timeout_gives_124(sandboxes):
    sb = sandboxes("sleep", "60", timeout=1)
    with pytest.raises(SandboxTimeoutError):
        sb.wait(raise_on_termination=False)
    assert sb.returncode == 124
    assert sb.poll() == 124


@pytest.mark.gvisor
def test_idle_timeout_ends_an_idle_sandbox(sandboxes):
    sb = sandboxes(idle_timeout=1)
    assert sb.exec("true").wait() == 0
    sb.wait()
    assert sb.returncode == 0
    assert records.read_exit(sb.object_id).status == "idle_timeout"


@pytest.mark.gvisor
def test_detach(sb):
    sb.detach()
    sb.detach()
    with pytest.raises(ClientClosed):
        sb.exec("true")
    with pytest.raises(ClientClosed):
        sb.terminate()
    for name in ("stdout", "stderr", "stdin", "filesystem"):  # Modal's properties check too (_ensure_attached)
        with pytest.raises(ClientClosed):
            getattr(sb, name)
    assert sb.returncode is None
    other = modal.Sandbox.from_id(sb.object_id)
    other.terminate(wait=True)
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 137


@pytest.mark.gvisor
def test_from_id(sb):
    other = modal.Sandbox.from_id(sb.object_id)
    assert other.object_id == sb.object_id
    assert other.exec("echo", "hello").stdout.read() == "hello\n"
    with pytest.raises(InvalidError):
        modal.Sandbox.from_id("not-an-id")
    with pytest.raises(NotFoundError):
        modal.Sandbox.from_id("sb-" + "a" * 22)


@pytest.mark.gvisor
def test_writes_vanish_at_terminate(sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_WRITABLE_ROOT_MAX", "0")  # the root on the state disk, not a tmpfs
    sb = sandboxes()
    assert sb.exec("sh", "-c", "mkdir -p /repo && echo data > /repo/f && cat /repo/f").stdout.read() == "data\n"
    upper = paths.sandbox_dir(sb.object_id) / "upper"
    assert (upper / "repo" / "f").exists()
    sb.terminate(wait=True)
    assert not upper.exists()


def test_a_tmpfs_root_makes_no_upper_directory(sandboxes):
    sb = sandboxes()  # the host image's default root: a tmpfs
    assert sb.exec("sh", "-c", "echo data > /f && cat /f").stdout.read() == "data\n"
    assert not (paths.sandbox_dir(sb.object_id) / "upper").exists()


@pytest.mark.gvisor
def test_workdir_is_created(sandboxes):
    sb = sandboxes(workdir="/repo")
    assert sb.exec("pwd").stdout.read() == "/repo\n"


def test_creator_exit_keeps_sandbox_and_timeout_still_fires(app, tmp_path):
    script = textwrap.dedent(
        """
        import pysandbox as modal
        app = modal.App.lookup("pysandbox-tests", create_if_missing=True)
        sb = modal.Sandbox.create("sleep", "100", app=app, timeout=3)
        print(sb.object_id, flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    sb = modal.Sandbox.from_id(out.strip())
    assert sb.poll() is None
    assert sb.exec("echo", "alive").stdout.read() == "alive\n"
    with pytest.raises(SandboxTimeoutError):
        sb.wait()
    assert sb.returncode == 124
    assert_torn_down(sb.object_id, sb._record.supervisor)


def test_aio_lifecycle(app):
    import asyncio

    async def main():
        sb = await modal.Sandbox.create.aio("sh", "-c", "echo hi", app=app)
        lines = [line async for line in sb.stdout]
        await sb.wait.aio()
        return lines, sb.returncode

    assert asyncio.run(main()) == (["hi\n"], 0)


def test_a_sandbox_whose_runner_cannot_start_says_why(app, tmp_path, monkeypatch):
    broken = tmp_path / "runner"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    for variable in ("PYSANDBOX_BWRAP", "PYSANDBOX_NSJAIL"):  # whichever runner this run uses
        monkeypatch.setenv(variable, str(broken))
    sb = modal.Sandbox.create("sleep", "10", app=app)
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 127
    with pytest.raises(ConflictError, match=r"already finished: it failed to start \(sandbox-supervisor: exec .*runner"):
        sb.exec("true")


@pytest.mark.parametrize("block_network", [False, True])
def test_a_workdir_that_is_not_a_directory_says_why(sandboxes, block_network):
    # Init's own message, not the supervisor's summary of its consequence ("the network could
    # not be set up") nor a bare "already finished".
    sb = sandboxes("sleep", "10", workdir="/etc/passwd", block_network=block_network)
    sb.wait(raise_on_termination=False)
    with pytest.raises(ConflictError, match=r"already finished.*\(sandbox-init: --dir /etc/passwd: Not a directory\)"):
        sb.exec("true")
