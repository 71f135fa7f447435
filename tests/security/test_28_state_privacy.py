"""Issue 11, item 3: the state directory is private to its owner. Another local user
can read nothing of it: not volumes, image layers, apps, name claims, records,
output, nor reach a sandbox's socket. The sandbox's own identity gets what it needs
through the supervisor's staged binds, so sandboxes keep working.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox._state import paths
from pysandbox._state.files import remove_tree

STRANGER = 65534  # nobody: any uid that is neither the caller nor the sandbox identity
HOST_PYTHON = "/usr/bin/python3"  # one a stranger can run (the caller's may live under /root)

# Run as the stranger: list the state directory, stat everything in it; print what succeeded.
PROBE = """
import os, sys
root, *inside = sys.argv[1:]
for attempt, path in [(os.listdir, root)] + [(os.stat, path) for path in inside]:
    try:
        attempt(path)
    except OSError:
        continue
    print(path)
"""


def _everything_under(root):
    paths = [str(root)]
    for directory, dirs, files in os.walk(root):
        paths += [os.path.join(directory, name) for name in dirs + files]
    return paths


@pytest.mark.rootless
def test_the_state_directory_is_made_private(sandboxes):
    sandboxes().exec("true").wait()
    info = os.stat(settings.state_dir())
    assert info.st_mode & 0o777 == 0o700 and info.st_uid == os.geteuid()


@pytest.mark.rootless
def test_a_state_directory_an_earlier_version_left_open_is_closed(tmp_path, monkeypatch):
    home = tmp_path / "old-home"
    home.mkdir(mode=0o755)
    monkeypatch.setenv("PYSANDBOX_HOME", str(home))
    modal.App.lookup("privacy", create_if_missing=True)
    assert os.stat(home).st_mode & 0o777 == 0o700


@pytest.fixture
def reachable_home(monkeypatch):
    """A state directory whose parents anyone may traverse (the session's is under pytest's
    private temp directory, which would hide it whatever its own mode)."""
    top = tempfile.mkdtemp(prefix="pysandbox-privacy-")
    os.chmod(top, 0o755)
    monkeypatch.setenv("PYSANDBOX_HOME", os.path.join(top, "home"))
    yield
    remove_tree(Path(top))


def test_another_user_reads_nothing_of_it(reachable_home, sandboxes):
    # As root: everything a user can store, then a stranger tries every path under the state directory.
    with modal.Volume.ephemeral() as volume:
        writer = sandboxes("sh", "-c", "echo entry-output; sleep 30", name="private-one",
                           volumes={"/data": volume}, env={"TOKEN": "t0k3n"})
        assert writer.exec("sh", "-c", "echo volume-data > /data/f").wait() == 0
        modal.Image.from_scratch().add_local_file(__file__, "/layer-file", copy=True).build()
        everything = _everything_under(settings.state_dir())
        assert any(p.endswith("/data/f") for p in everything) and any("/layers/" in p for p in everything)
        readable = subprocess.run([HOST_PYTHON, "-c", PROBE, *everything], user=STRANGER, group=STRANGER,
                                  capture_output=True, text=True, check=True).stdout.split()
        assert readable == [], f"another user can reach {readable[:5]}"
        # The sandbox still works: its identity reaches its own storage through staged binds.
        assert writer.exec("cat", "/data/f").stdout.read() == "volume-data\n"
        socket = paths.sandbox_dir(writer.object_id) / "agent.sock"
        connect = subprocess.run(
            [HOST_PYTHON, "-c", "import socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); "
             "s.connect(sys.argv[1])", str(socket)], user=STRANGER, group=STRANGER, capture_output=True, text=True)
        assert connect.returncode != 0 and "Permission denied" in connect.stderr


@pytest.mark.rootless
def test_a_state_directory_of_another_user_is_refused(monkeypatch, tmp_path):
    # Its owner could swap the layers, volumes and records pysandbox trusts.
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    if os.geteuid() == 0:
        os.chown(theirs, STRANGER, STRANGER)
    else:
        theirs = Path("/var/tmp")  # root's
    monkeypatch.setenv("PYSANDBOX_HOME", str(theirs))
    with pytest.raises(modal.exception.InvalidError, match="belongs to uid .*PYSANDBOX_HOME at a directory of your own"):
        modal.App.lookup("not-in-their-state", create_if_missing=True)
    assert not os.path.exists(theirs / "apps")



# In a fresh interpreter (the privacy check runs once per process): make one sandbox directory.
MAKE_SANDBOX_DIR = """
from pysandbox._state import files, records
print(records.make_sandbox_dir(files.new_id("sb-")))
"""


def _make_sandbox_dir_in(home):
    """make_sandbox_dir in a fresh process, with `home` (whose sandboxes/ exists) as the state directory:
    it skips making sandboxes/ when it is there (a mkdir and a stat fewer per create), and must check
    the state directory all the same, before it writes anything in it."""
    return subprocess.run([sys.executable, "-c", MAKE_SANDBOX_DIR], env={**os.environ, "PYSANDBOX_HOME": str(home)},
                          capture_output=True, text=True)


def _home_with_sandboxes(tmp_path):
    home = tmp_path / "home"
    (home / paths.SANDBOXES_NAME).mkdir(parents=True)
    os.chmod(home, 0o755)
    return home


@pytest.mark.rootless
def test_a_create_closes_an_open_state_directory_whose_sandboxes_directory_exists(tmp_path):
    home = _home_with_sandboxes(tmp_path)
    made = _make_sandbox_dir_in(home)
    assert made.returncode == 0, made.stderr
    assert os.stat(home).st_mode & 0o777 == 0o700 and os.path.isdir(made.stdout.strip())


def test_a_create_refuses_another_users_state_directory_whose_sandboxes_directory_exists(tmp_path):
    home = _home_with_sandboxes(tmp_path)
    os.chown(home, STRANGER, STRANGER)
    made = _make_sandbox_dir_in(home)
    assert made.returncode != 0 and "PYSANDBOX_HOME at a directory of your own" in made.stderr
    assert os.listdir(home / paths.SANDBOXES_NAME) == []
