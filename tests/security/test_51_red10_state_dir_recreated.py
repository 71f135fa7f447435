"""Red team, session 10: the state directory's privacy is checked once per process (files.private_state_dir
caches it), so a state directory removed while a process runs (a reset by hand, a cleanup script) is made again
by its next create with the umask's mode (make_sandbox_dir's ensure_dir makes the missing parents, 0755), or,
where its parent is shared (PYSANDBOX_HOME under /tmp), taken as it is from the local user who made it
meanwhile: the process then keeps its records, sockets, volumes and layers in a directory another user owns.
The same on main before this session (ensure_dir relied on the same cache); session 10's make_sandbox_dir,
which makes sandboxes/ only when the staging mkdir finds it missing, kept it.
"""

import os
import subprocess
import sys

import pytest

STRANGER = 65534  # nobody

# In a fresh interpreter (the check runs once per process): a sandbox directory; the state directory removed
# and, with argv[1] "stranger", made again by another user and open to all; then a second sandbox directory.
_TWICE = """
import os, shutil, sys
from pysandbox import settings
from pysandbox._state import files, records
home = settings.state_dir()
print("made", records.make_sandbox_dir(files.new_id("sb-")), flush=True)
shutil.rmtree(home)
print("removed", not os.path.exists(home), flush=True)
if sys.argv[1] == "stranger":
    os.mkdir(home)
    os.chmod(home, 0o777)
    os.chown(home, int(sys.argv[2]), int(sys.argv[2]))
try:
    print("made", records.make_sandbox_dir(files.new_id("sb-")), flush=True)
except Exception as exc:
    print("refused", type(exc).__name__, exc, flush=True)
"""


def _twice(home, *args):
    done = subprocess.run([sys.executable, "-c", _TWICE, *args], env={**os.environ, "PYSANDBOX_HOME": str(home)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # The attack was made: a first sandbox directory, then its state directory gone.
    assert lines[0].startswith("made ") and lines[1] == "removed True", done.stdout
    return lines[2]


@pytest.mark.rootless
def test_a_state_directory_made_again_is_private(tmp_path):
    home = tmp_path / "home"
    second = _twice(home, "alone")
    assert second.startswith("made "), second
    assert os.stat(home).st_mode & 0o777 == 0o700


def test_a_state_directory_made_again_by_another_user_is_refused(tmp_path):  # root: it chowns
    os.chmod(tmp_path, 0o777)  # a shared parent, as /tmp
    home = tmp_path / "home"
    second = _twice(home, "stranger", str(STRANGER))
    assert second.startswith("refused InvalidError") and "directory of your own" in second, second
