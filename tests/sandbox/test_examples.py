"""The programs in examples/ run as a user runs them (`python examples/<name>.py`, a fresh process with the
session's state directory and runner), print what they promise, and leave no sandbox running."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pysandbox as modal

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TIMEOUT_S = 100
pytestmark = pytest.mark.rootless  # users run pysandbox rootless: the guide and examples must hold there too


def _run(name, *, modal_copy_in=None):
    """Run examples/<name>; with modal_copy_in (a directory), run a copy written for Modal (`import modal`)
    there, through the opt-in, as the examples say they can be."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    script = ROOT / "examples" / name
    argv = [sys.executable, str(script)]
    if modal_copy_in is not None:
        source = script.read_text()
        assert "\nimport pysandbox as modal\n" in source
        copy = modal_copy_in / name
        copy.write_text(source.replace("\nimport pysandbox as modal\n", "\nimport modal\n", 1))
        argv = [sys.executable, "-m", "pysandbox.as_modal", str(copy)]
    done = subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S)
    assert done.returncode == 0, f"{name}:\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout.splitlines()


def _running(app_name):
    app = modal.App.lookup(app_name, create_if_missing=True)
    return [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)]


def test_agent_loop_feeds_back_errors_and_timeouts_until_solved(runner, state_home):
    lines = _run("agent_loop.py")
    assert lines[0] == "step 1: exit 1: NameError: name 'offset' is not defined"
    assert lines[1] == "step 2: timed out after 3s"
    assert lines[2:] == ["step 3: exit 0: 385", "solved in 3 steps"]
    assert _running("agent-loop") == []


def test_eval_harness_collects_every_result(runner, state_home):
    lines = _run("eval_harness.py")
    results = {r["input"]: r for r in map(json.loads, lines[:-1])}
    assert {arg: r["status"] for arg, r in results.items()} == {
        "0": "pass", "1": "pass", "10": "pass", "20": "pass", "30": "pass", "7": "fail", "-1": "timeout"}
    assert results["7"]["output"] == "13"
    assert lines[-1] == "5/7 passed"
    assert _running("eval-harness") == []


@pytest.mark.parametrize("written_for_modal", [False, True], ids=["pysandbox", "import-modal"])
def test_web_service_is_reached_through_its_tunnel(runner, state_home, tmp_path, written_for_modal):
    lines = _run("web_service.py", modal_copy_in=tmp_path if written_for_modal else None)
    assert lines[0].startswith("tunnel: http://127.0.0.1:")
    assert lines[1:] == ["200 /", "200 /hello"]
    assert _running("web-service") == []
