"""pysandbox's pytest plugin, as a user runs it: examples/pytest runs in a separate pytest
(under xdist too) and leaves no sandbox behind; a run killed mid-test takes its sandboxes with it."""

import importlib.metadata
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import pysandbox as modal

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.rootless


def _pytest(runner, *args, cwd=ROOT, **popen):
    registered = any(e.name == "pysandbox" for e in importlib.metadata.entry_points(group="pytest11"))
    argv = [sys.executable, "-m", "pytest", *([] if registered else ["-p", "pysandbox.pytest_plugin"]),
            "-p", "no:cacheprovider", "-q", "--sandbox-runner", runner, *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen(argv, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def _running_in_the_plugins_app():
    app = modal.App.lookup("pytest", create_if_missing=True)
    return [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_example_suite_passes_and_leaves_nothing_running(runner, state_home, workers):
    run = _pytest(runner, "examples/pytest", *workers)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0 and "4 passed" in out, out
    assert _running_in_the_plugins_app() == []


def test_a_killed_run_takes_its_sandboxes_with_it(runner, state_home, tmp_path):
    (tmp_path / "test_long.py").write_text(textwrap.dedent("""
        import time

        def test_long(sandbox):
            print("SANDBOX", sandbox.object_id, flush=True)
            time.sleep(120)
    """))
    run = _pytest(runner, "-s", "test_long.py", cwd=tmp_path, start_new_session=True)
    line = ""
    deadline = time.monotonic() + 120
    while not line.startswith("SANDBOX") and time.monotonic() < deadline:
        line = run.stdout.readline() or line
    assert line.startswith("SANDBOX"), line
    sb = modal.Sandbox.from_id(line.split()[1])
    assert sb.poll() is None
    os.killpg(run.pid, signal.SIGKILL)  # no teardown at all: only the tether ends it
    run.wait()
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 137
    assert _running_in_the_plugins_app() == []


@pytest.mark.parametrize("given", ["docker", "docker/Dockerfile"])
def test_sandbox_image_from_a_dockerfile_builds_in_its_directory(runner, state_home, tmp_path, given):
    """--sandbox-image names a Dockerfile or its directory; its COPY reads beside it, as `pysandbox run --image`
    (a directory was taken for a registry reference, a Dockerfile built with the working directory as context)."""
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "marker.txt").write_text("beside the Dockerfile\n")
    (tmp_path / "docker" / "Dockerfile").write_text("FROM scratch\nCOPY marker.txt /marker.txt\n")
    (tmp_path / "test_image.py").write_text(textwrap.dedent("""
        def test_image(sandbox_image):
            assert sandbox_image.object_id.startswith("im-")
    """))
    run = _pytest(runner, "--sandbox-image", given, "test_image.py", cwd=tmp_path)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0 and "1 passed" in out, out


def test_a_tether_must_be_a_bool(app):
    with pytest.raises(modal.exception.InvalidError, match="tether must be True or False"):
        modal.Sandbox.create(app=app, experimental_options={"tether": "yes"})
