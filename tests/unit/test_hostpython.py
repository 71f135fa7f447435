"""Finding a host Python to copy into an image (image/hostpython.py), on fake installations."""

import os

import pytest

import pysandbox as modal
from pysandbox.exception import InvalidError
from pysandbox.image import debian, hostpython


def install(root, series, patch):
    """A fake self-contained installation: PREFIX/bin/pythonX.Y and PREFIX/lib/pythonX.Y/os.py."""
    prefix = root / f"{series}.{patch}"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib" / f"python{series}").mkdir(parents=True)
    (prefix / "lib" / f"python{series}" / "os.py").write_text("")
    exe = prefix / "bin" / f"python{series}"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return prefix


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    (tmp_path / "path").mkdir()
    for series in hostpython.SERIES:
        monkeypatch.delenv(hostpython.variable(series), raising=False)
    return tmp_path


def test_pyenv_newest_patch_wins(host):
    install(host / "pyenv" / "versions", "3.12", 1)
    newest = install(host / "pyenv" / "versions", "3.12", 10)
    install(host / "pyenv" / "versions", "3.13", 0)
    (host / "pyenv" / "versions" / "3.12.11-dev").mkdir()  # not a release: ignored
    found = hostpython.find("3.12")
    assert found.prefix == newest and "pyenv" in found.source


def test_variable_wins_and_is_checked(host, monkeypatch):
    install(host / "pyenv" / "versions", "3.12", 1)
    chosen = install(host / "opt", "3.12", 4)
    monkeypatch.setenv("PYSANDBOX_PYTHON_3_12", str(chosen / "bin" / "python3.12"))
    assert hostpython.find("3.12").prefix == chosen
    monkeypatch.setenv("PYSANDBOX_PYTHON_3_12", "/usr/bin/python3.12")  # not self-contained
    with pytest.raises(InvalidError, match="PYSANDBOX_PYTHON_3_12"):
        hostpython.find("3.12")


def test_path_is_searched_and_shims_skipped(host):
    prefix = install(host / "opt", "3.10", 2)
    os.symlink(prefix / "bin" / "python3.10", host / "path" / "python3.10")
    assert hostpython.find("3.10").prefix == prefix
    os.unlink(host / "path" / "python3.10")
    (host / "shims").mkdir()
    os.symlink(prefix / "bin" / "python3.10", host / "shims" / "python3.10")
    os.environ["PATH"] = str(host / "shims")
    with pytest.raises(InvalidError, match="No Python 3.10 .*pyenv install 3.10"):
        hostpython.find("3.10")


def test_series_are_checked():
    assert hostpython.check_series("3.13", "add_python") == "3.13"
    for bad in ("3.9", "3.12.1", 3.12, None):
        with pytest.raises(InvalidError, match="add_python="):
            hostpython.check_series(bad, "add_python")


def test_debian_suite_and_mirror_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("PYSANDBOX_DEBIAN_SUITE", raising=False)
    monkeypatch.delenv("PYSANDBOX_DEBIAN_MIRROR", raising=False)
    assert (debian.suite(), debian.mirror()) == ("bookworm", "http://deb.debian.org/debian")
    monkeypatch.setenv("PYSANDBOX_DEBIAN_SUITE", "trixie")
    monkeypatch.setenv("PYSANDBOX_DEBIAN_MIRROR", "http://127.0.0.1:3142/debian")
    assert (debian.suite(), debian.mirror()) == ("trixie", "http://127.0.0.1:3142/debian")
    assert [type(step).__name__ for step in modal.Image.debian_slim(python_version="3.13")._steps] == ["DebianSlim"]
    assert [type(step).__name__ for step in modal.Image.debian_slim(python_version="3.12")._steps] == \
        ["DebianSlim", "AddPython"]
    for variable, bad in (("PYSANDBOX_DEBIAN_SUITE", "--include=x"), ("PYSANDBOX_DEBIAN_MIRROR", "-v")):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(InvalidError, match=variable):
            debian.suite() if variable.endswith("SUITE") else debian.mirror()


def test_copy_into_takes_the_interpreter_library_and_stdlib_only(host, tmp_path):
    prefix = install(host / "opt", "3.12", 1)
    stdlib = prefix / "lib" / "python3.12"
    for rel in ("json/__init__.py", "test/test_x.py", "site-packages/host_pkg.py", "tkinter/__init__.py",
                "lib-dynload/_json.so", "lib-dynload/_tkinter.so", "ensurepip/_bundled/pip.whl"):
        (stdlib / rel).parent.mkdir(parents=True, exist_ok=True)
        (stdlib / rel).write_text("x")
    os.symlink("json", stdlib / "json_link")
    (prefix / "lib" / "libpython3.12.so.1.0").write_text("lib")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    linked = hostpython.copy_into(hostpython.HostPython("3.12", prefix, "a test"), rootfs)
    local = rootfs / "usr" / "local"
    copied = sorted(str(p.relative_to(local)) for p in local.rglob("*"))
    assert copied == ["bin", "bin/python", "bin/python3", "bin/python3.12", "lib", "lib/libpython3.12.so.1.0",
                      "lib/python3.12", "lib/python3.12/ensurepip", "lib/python3.12/ensurepip/_bundled",
                      "lib/python3.12/ensurepip/_bundled/pip.whl", "lib/python3.12/json",
                      "lib/python3.12/json/__init__.py", "lib/python3.12/json_link", "lib/python3.12/lib-dynload",
                      "lib/python3.12/lib-dynload/_json.so", "lib/python3.12/os.py"]
    assert os.readlink(local / "lib" / "python3.12" / "json_link") == "json"
    assert os.readlink(local / "bin" / "python") == "python3.12"
    assert sorted(p.name for p in linked) == ["_json.so", "libpython3.12.so.1.0", "python3.12"]
