"""layout.clean_python_mounts: its pyvenv.cfg's name and text are the interpreter's, computed once per
process (layout._venv_cfg); where it goes, the state directory, and whether it is there are looked up on
every create."""

import os

from pysandbox.runtime import layout


def test_the_state_directory_is_looked_up_each_time_and_a_lost_file_rewritten(tmp_path, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_HOST_SITE_PACKAGES", raising=False)
    first, second = tmp_path / "one", tmp_path / "two"
    mounts = {}
    for home in (first, second):
        monkeypatch.setenv("PYSANDBOX_HOME", str(home))
        (mount,) = layout.clean_python_mounts()
        assert mount.source.startswith(f"{home}/python/") and mount.dest == layout.VENV_CFG_PATH
        mounts[home] = mount.source
    assert os.path.basename(mounts[first]) == os.path.basename(mounts[second])
    name, text = layout._venv_cfg()
    with open(mounts[second], "rb") as f:
        assert f.read() == text
    assert b"include-system-site-packages = false" in text
    os.unlink(mounts[second])
    layout.clean_python_mounts()  # PYSANDBOX_HOME is still `second`
    assert os.path.exists(mounts[second])


def test_host_site_packages_is_read_on_each_call(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", str(tmp_path))
    monkeypatch.setenv("PYSANDBOX_HOST_SITE_PACKAGES", "1")
    assert layout.clean_python_mounts() == ()
    monkeypatch.setenv("PYSANDBOX_HOST_SITE_PACKAGES", "0")
    assert len(layout.clean_python_mounts()) == 1
