"""The seed document's examples, verbatim but for `import pysandbox as modal`, each in its own process."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
