"""`pysandbox doctor` on this host, for real."""

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.rootless


def doctor(**env):
    return subprocess.run([sys.executable, "-m", "pysandbox", "doctor"], capture_output=True, text=True,
                          env={**os.environ, **env})


BINARY_VARIABLE = {"bwrap": "PYSANDBOX_BWRAP", "nsjail": "PYSANDBOX_NSJAIL", "gvisor": "PYSANDBOX_RUNSC"}


@pytest.mark.gvisor
def test_doctor_starts_a_sandbox_here(runner):
    result = doctor()  # under the runner PYSANDBOX_RUNNER names
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok  runner: {runner}" in result.stdout
    assert "ok  a sandbox          created, ran `true` and terminated in" in result.stdout
    assert "sandboxes work here" in result.stdout
    identity = "root: sandbox ids 0..65535 are host ids" if os.geteuid() == 0 else "sandbox root is you"
    assert identity in result.stdout


@pytest.mark.gvisor
def test_doctor_names_the_missing_runner_only_when_chosen(runner):
    other = next(name for name in BINARY_VARIABLE if name != runner)
    assert doctor(**{BINARY_VARIABLE[other]: f"/nonexistent/{other}"}).returncode == 0
    result = doctor(**{BINARY_VARIABLE[runner]: f"/nonexistent/{runner}"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"ERR runner: {runner}" in result.stdout
    assert result.stdout.rstrip().endswith(f"sandboxes cannot start here: fix runner: {runner}")


@pytest.mark.needs_gvisor  # a caller without a subordinate id range is refused: test_identity_single.py
def test_doctor_says_what_the_gvisor_runner_gives_here():
    result = doctor()
    version = subprocess.run([shutil.which("runsc"), "--version"], capture_output=True, text=True).stdout
    assert f"ok  gvisor             {version.splitlines()[0]} at " in result.stdout
    assert ", platform " in result.stdout and "not yet: outbound_domain_allowlist" in result.stdout
    how = "as root" if os.geteuid() == 0 else "rootless (runsc as root of the sandbox's user namespace)"
    assert f", {how}; runs " in result.stdout
