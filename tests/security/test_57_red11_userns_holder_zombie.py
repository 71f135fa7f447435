"""Red team (red11): the inner user namespace's holder was never reaped by whoever made it.
Fixed: an attached maker (userns_enter's) waits for its holder again; only the supervisor's detached one does not.

Session 11 (194ce4d) stopped the outer maker from waiting for the inner holder (native/common/userns.c,
outer_main): "the holder ends with us, an orphan its reaper collects". The supervisor's runner child is the only
caller for whom that reaper is known (the supervisor, a subreaper). userns_enter's callers, sandbox-rmtree (every
files.remove_tree of an unprivileged caller: gc, a volume's delete, a build's leftovers) and the supervisor's
--cleanup child, wait for the maker only: the holder is reparented to the caller's nearest subreaper, or pid 1.
A caller that is pid 1 of a container (`docker run image python app.py`) or a subreaper that reaps only its own
children (Python's subprocess waits for its pid only) keeps one zombie per removal, for good: a pid of the host's
each. Before the change the maker waited for the holder, and nothing was left.

Run it as root and as the unprivileged user (PYSANDBOX_ROOTLESS_TAG=x bash .ci/rootless <this file>)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.rootless

# A caller that is a subreaper (as pid 1 is), removing a tree with a directory in it (sandbox-rmtree's work): the
# zombies it is left with, its own child (sandbox-rmtree) long reaped by subprocess.
_CALLER = r"""
import ctypes, os, subprocess, sys, time
from pysandbox import identity, settings
assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
tree = sys.argv[1]
os.makedirs(os.path.join(tree, "a", "b"))
ids = identity.current()
# root's own removal takes no namespace: the plan an unprivileged caller's is, mapping root's own ids
plan = ids.supervisor_args() if ids.newidmap else ["--userns-uid", "0:0:65536", "--userns-gid", "0:0:65536"]
done = subprocess.run([settings.native_binary("sandbox-rmtree"), *plan, tree], stdin=subprocess.DEVNULL,
                      capture_output=True, text=True, timeout=120)
assert done.returncode == 0 and not os.path.lexists(tree), done.stderr

def children():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.append(fields[0])
    return found

deadline = time.monotonic() + 30  # a bound for a loaded machine: a holder still running ends when its maker has
while "Z" not in children() and any(s != "Z" for s in children()) and time.monotonic() < deadline:
    time.sleep(0.05)
print(len([s for s in children() if s == "Z"]))
"""


def test_a_removal_in_the_sandbox_ids_namespace_leaves_the_caller_no_zombie(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", _CALLER, str(tmp_path / "tree")], env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0", f"zombies left to the caller: {out.stdout.strip()}"
