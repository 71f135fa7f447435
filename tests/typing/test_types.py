"""The public API's types as a user's type checker sees them (issue 16).

`mypy --strict` runs on user_program.py (typical Modal code with assert_type on every result: it must
pass) and on wrong_types.py (mistakes marked `# E: <code>`: exactly those errors, on those lines, must be
reported), and on the package itself with pyproject.toml's configuration. mypy is pinned in setup.cfg's
dev extras: its verdicts change between versions.
"""

import inspect
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import pysandbox
from pysandbox import _exec_types

pytest.importorskip("mypy", reason="mypy is a dev dependency: pip install -e .[dev]")

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
EXPECTED = re.compile(r"#\s*E:\s*([a-z-]+)\s*$")
REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


def _mypy(config: Path, *targets: str) -> subprocess.CompletedProcess:
    # MYPYPATH: this checkout's pysandbox, the one the tests import (not an installed copy). A cache per
    # configuration: a cache written under another one would be thrown away each time.
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    cache = ROOT / ".mypy_cache" / config.stem
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(cache),
                           *targets], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _user_check(program: Path) -> subprocess.CompletedProcess:
    return _mypy(HERE / "mypy.ini", str(program.relative_to(ROOT)))


def test_user_program_passes_strict():
    result = _user_check(HERE / "user_program.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 1 source file" in result.stdout


def test_wrong_types_are_errors():
    program = HERE / "wrong_types.py"
    expected = {(number, match.group(1)) for number, line in enumerate(program.read_text().splitlines(), 1)
                if (match := EXPECTED.search(line))}
    result = _user_check(program)
    reported = {(int(m.group("line")), m.group("code")) for m in map(REPORTED.match, result.stdout.splitlines())
                if m is not None}
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(expected) >= 20
    assert reported == expected, result.stdout


def test_package_passes_its_configuration():
    result = _mypy(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not hasattr(typing, "get_overloads"), reason="typing.get_overloads is Python 3.11+")
def test_exec_overloads_name_the_real_parameters():
    """The overloads are written apart from the method: they must list exactly its parameters,
    in order, of the same kinds (defaults are `...` in an overload)."""
    real = inspect.signature(pysandbox.Sandbox.exec)
    overloads = typing.get_overloads(_exec_types.ExecSignature.__call__)
    assert len(overloads) == 3
    for overload in overloads:
        declared = inspect.signature(overload)
        assert [(p.name, p.kind) for p in declared.parameters.values()] == \
               [(p.name, p.kind) for p in real.parameters.values()]
