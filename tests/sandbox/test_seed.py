"""The seed document's examples, verbatim but for `import pysandbox as modal`, each in its own process."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import pysandbox as modal

pytestmark = pytest.mark.rootless
SEED = Path(__file__).resolve().parent.parent / "seed"


def run_example(name, timeout=60):
    return subprocess.run(
        [sys.executable, str(SEED / name)], capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


def test_first_example_prints_hello_and_ten_times():
    out = run_example("example_first.py")
    lines = out.splitlines()
    assert lines[0] == "hello"
    assert lines[1] == ""  # print() of "hello\n" adds a blank line, as on Modal
    times = lines[2:]
    assert len(times) == 10 and all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in times)


def test_entrypoint_example_streams_until_timeout():
    out = run_example("example_entrypoint.py")
    assert "Serving HTTP on 0.0.0.0 port 8080" in out


def test_secrets_example():
    assert run_example("example_secrets.py") == "hello\n\n"


def test_verbose_example_logs_exec_and_file_operations():
    out = subprocess.run([sys.executable, str(SEED / "example_verbose.py")], capture_output=True, text=True,
                         timeout=60, check=True)
    try:
        assert out.stdout == "hello\n\n"
        logs = out.stderr.splitlines()
        assert "Sandbox exec started: python -c print('hello')" in logs
        opened = [line for line in logs if line.startswith("Opened file 'test.txt': fd-")]
        assert len(opened) == 1
        fd_id = opened[0].rsplit(" ", 1)[1]
        assert f"Wrote to file: {fd_id}" in logs and f"Closed file: {fd_id}" in logs
    finally:  # the example leaves its sandbox running, as on Modal
        app = modal.App.lookup("my-app")
        for sb in modal.Sandbox.list(app_id=app.app_id):
            sb.terminate(wait=True)
