"""`pysandbox doctor` on this host, for real."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.rootless


def doctor(**env):
    return subprocess.run([sys.executable, "-m", "pysandbox", "doctor"], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_doctor_starts_a_sandbox_here():
    result = doctor()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok  a sandbox          created, ran `true` and terminated in" in result.stdout
    assert "sandboxes work here" in result.stdout
    identity = "root: sandbox root is host uid" if os.geteuid() == 0 else "sandbox root is you (rootless)"
    assert identity in result.stdout


def test_doctor_names_a_missing_runner():
    result = doctor(PYSANDBOX_BWRAP="/nonexistent/bwrap")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "ERR runner: bwrap" in result.stdout
    assert result.stdout.rstrip().endswith("sandboxes cannot start here: fix runner: bwrap")


def test_doctor_reports_nsjail_and_runs_a_sandbox_under_it():
    result = doctor(PYSANDBOX_RUNNER="nsjail")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok  runner: nsjail" in result.stdout and "with any network" in result.stdout
    assert "ok  a sandbox          created, ran `true` and terminated in" in result.stdout


def test_doctor_missing_nsjail_matters_only_when_chosen():
    assert doctor(PYSANDBOX_NSJAIL="/nonexistent/nsjail").returncode == 0
    result = doctor(PYSANDBOX_NSJAIL="/nonexistent/nsjail", PYSANDBOX_RUNNER="nsjail")
    assert result.returncode == 1 and "ERR runner: nsjail" in result.stdout
    assert result.stdout.rstrip().endswith("sandboxes cannot start here: fix runner: nsjail")
