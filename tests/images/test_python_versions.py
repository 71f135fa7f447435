"""debian_slim(python_version=) for each series 3.10-3.13: Debian's own Python for the one
its suite ships, the host's installation of the others (image/hostpython.py), named in the
build log; a series the host lacks fails before any work with what to install."""

import os
import sys

import pytest

import pysandbox as modal
from pysandbox.exception import InvalidError
from pysandbox.image import debian as suites
from pysandbox.image import hostpython
from pysandbox.image.steps import AddPython

from .conftest import builder_sandbox_count, temp_dirs

CHECK = "python -c 'import sys, ssl, sqlite3; print(sys.version)'; pip --version"
PYENV = os.path.expanduser(os.environ.get("PYENV_ROOT") or "~/.pyenv")


def run(sb, command):
    p = sb.exec("sh", "-c", command)
    out = p.stdout.read()
    assert p.wait() == 0, p.stderr.read()
    return out


def host_has(series):
    try:
        return hostpython.find(series)
    except InvalidError:
        return None


@pytest.mark.parametrize("series", hostpython.SERIES)
def test_debian_slim_runs_each_python_series(series, debian, sandboxes, capfd, monkeypatch):
    own = series == suites.SUITE_PYTHON[suites.suite()]
    found = None if own else host_has(series)
    if not own and found is None:
        pytest.skip(f"this host has no Python {series} (test_missing_series_names_what_to_install covers that)")
    if series == "3.10":  # the discovery by environment variable, with a real installation
        monkeypatch.setenv(hostpython.variable(series), str(found.executable))
    with modal.enable_output():
        image = modal.Image.debian_slim(python_version=series).build()
    log = capfd.readouterr().err
    if not own and "add_python" in log:  # built now, not by the other runner's pass: the source is named
        assert f"Python {series}: not in the base image's distribution; copying the host's installation" in log
        assert (f"{hostpython.variable(series)}=" if series == "3.10" else found.source) in log
    sb = sandboxes(image=image)
    version, pip = run(sb, CHECK).splitlines()
    assert version.startswith(series + "."), version
    assert pip.startswith("pip ") and pip.endswith(f"(python {series})"), pip


def test_callers_version_is_the_default():
    caller = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert modal.Image.debian_slim()._steps == modal.Image.debian_slim(python_version=caller)._steps


def test_missing_series_names_what_to_install(debian, tmp_path, monkeypatch):
    """A controlled host without Python 3.12: no pyenv, nothing on PATH, no variable."""
    debian_series = suites.SUITE_PYTHON[suites.suite()]
    series = next(s for s in hostpython.SERIES if s != debian_series)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(hostpython.variable(series), raising=False)
    # The step on a parent of its own: debian_slim(series) may be cached by the test above.
    image = debian.env({"PARENT": "of-its-own"})._extend(AddPython(series, "python_version"))
    before, sandboxes_before = temp_dirs(), builder_sandbox_count()
    with pytest.raises(InvalidError, match=rf"No Python {series} for the image.*pyenv install {series}.*"
                                           rf"{hostpython.variable(series)}"):
        image.build()
    assert (temp_dirs(), builder_sandbox_count()) == (before, sandboxes_before)  # said before any work

    monkeypatch.setenv(hostpython.variable(series), str(tmp_path / "python"))
    with pytest.raises(InvalidError, match=rf"{hostpython.variable(series)}=.*fix or unset it"):
        image.build()


def test_unknown_series_is_refused_at_build():
    image = modal.Image.debian_slim(python_version="3.9")
    with pytest.raises(InvalidError, match=r"python_version='3.9': pass a Python series, one of 3.10, 3.11"):
        image.build()
