"""settings.state_dir(): every variable it depends on read on each call (its Path is cached per setting,
not per process): PYSANDBOX_HOME (a relative one against the working directory of the moment), else
/var/lib/pysandbox for root, else XDG_STATE_HOME or HOME for anyone else."""

import os
from pathlib import Path

from pysandbox import settings


def test_each_setting_is_read_on_each_call(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", "/one")
    assert settings.state_dir() == Path("/one")
    monkeypatch.setenv("PYSANDBOX_HOME", "/two")
    assert settings.state_dir() == Path("/two")
    monkeypatch.setenv("PYSANDBOX_HOME", "rel")
    for cwd in (tmp_path, tmp_path / "sub"):
        cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(cwd)
        assert settings.state_dir() == cwd / "rel"
    monkeypatch.setenv("PYSANDBOX_HOME", "")  # empty: unset
    for euid, xdg, home, expected in ((0, "/x", "/h", "/var/lib/pysandbox"),
                                      (1000, "/x", "/h", "/x/pysandbox"),
                                      (1000, "/y", "/h", "/y/pysandbox"),
                                      (1000, None, "/h", "/h/.local/state/pysandbox"),
                                      (1000, None, "/g", "/g/.local/state/pysandbox"),
                                      (0, None, "/g", "/var/lib/pysandbox")):
        monkeypatch.setattr(os, "geteuid", lambda euid=euid: euid)
        if xdg is None:
            monkeypatch.delenv("XDG_STATE_HOME", raising=False)
        else:
            monkeypatch.setenv("XDG_STATE_HOME", xdg)
        monkeypatch.setenv("HOME", home)
        assert settings.state_dir() == Path(expected)
    monkeypatch.delenv("PYSANDBOX_HOME")
    assert settings.state_dir() == Path("/var/lib/pysandbox")  # (euid 0 still)


def test_a_pinned_directory_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", "/elsewhere")
    with settings.pinned_state_dir(tmp_path):
        assert settings.state_dir() == tmp_path
    assert settings.state_dir() == Path("/elsewhere")
