"""Issue 13, the first-user overlap: root's sandboxes once ran as host uid 100000, the very
range `useradd` gives the first ordinary user, who then became that uid with newuidmap,
killed root's sandbox processes and rewrote root's volumes. Root's sandbox ids now come from a
range reserved for pysandbox in /etc/subuid and /etc/subgid: a user created afterwards gets a
range beside it, and newuidmap refuses to map any id of it for that user."""

import os
import subprocess

import pytest

from pysandbox import identity

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a user, and root's range is the one attacked")

ATTACKER = "pysbattack"
# As the new user: a user namespace waiting to be mapped, then newuidmap and newgidmap asked to map
# the given host id into it. Prints each tool's exit status.
MAP = """
unshare --user sleep 10 & pid=$!
sleep 0.3
newuidmap $pid 0 {uid} 1 2>&1; echo "uid-map=$?"
newgidmap $pid 0 {gid} 1 2>&1; echo "gid-map=$?"
kill $pid
"""


@pytest.fixture
def attacker():
    subprocess.run(["userdel", "--remove", ATTACKER], capture_output=True, check=False)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", ATTACKER], check=True)
    try:
        yield ATTACKER
    finally:
        subprocess.run(["userdel", "--remove", ATTACKER], capture_output=True, check=False)


def _ranges(path, name):
    with open(path) as f:
        return [(start, count) for owner, start, count in identity.parse_entries(f.read()) if owner == name]


def test_a_new_user_gets_a_range_beside_roots(attacker):
    start = identity.current().uids[0][1]
    for path in (identity.SUBUID, identity.SUBGID):
        theirs = _ranges(path, attacker)
        assert theirs, f"useradd gave {attacker} no range in {path}: nothing below tests newuidmap's refusal"
        for first, count in theirs:
            assert first + count <= start or first >= start + identity.RANGE, (path, first, count, start)
        assert _ranges(path, identity.OWNER) == [(start, identity.RANGE)]


@pytest.mark.parametrize("offset", [0, 1000, identity.RANGE - 1])  # sandbox root, a user, the last id
def test_a_new_user_cannot_become_any_of_roots_sandbox_ids(attacker, offset):
    host_id = identity.current().uids[0][1] + offset
    result = subprocess.run(["runuser", "-u", attacker, "--", "sh", "-c", MAP.format(uid=host_id, gid=host_id)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert "uid-map=1" in result.stdout and "gid-map=1" in result.stdout, result.stdout + result.stderr
    # The same user may map its own range: the refusal above is about root's, not a broken setup.
    own = MAP.format(uid=_ranges(identity.SUBUID, attacker)[0][0], gid=_ranges(identity.SUBGID, attacker)[0][0])
    result = subprocess.run(["runuser", "-u", attacker, "--", "sh", "-c", own],
                            capture_output=True, text=True, timeout=60, check=False)
    assert "uid-map=0" in result.stdout and "gid-map=0" in result.stdout, result.stdout + result.stderr
