"""Issue 13: a sandbox has a whole range of users, as on Modal. Whatever switches user
works inside (su, setpriv, chown), files keep their owners across sandboxes, and one
sandbox cannot use up the kernel's per-user limits that all of a caller's sandboxes share."""

import os

import pytest

import pysandbox as modal
from pysandbox import identity

pytestmark = [pytest.mark.rootless, pytest.mark.skipif(
    identity.current().size == 1,
    reason="this caller has no subordinate id range (or no newuidmap): only sandbox root is mapped, as "
           "`pysandbox doctor` says; test_identity_single.py covers that mode")]


def run(sb, script):
    p = sb.exec("sh", "-c", script)
    out, err = p.stdout.read(), p.stderr.read()
    assert p.wait() == 0, err
    return out


def test_the_whole_range_is_mapped(sb):
    # One line per range of the namespace around it (sandbox root, then the rest), together 0..size-1.
    for name in ("uid_map", "gid_map"):
        lines = [tuple(map(int, line.split())) for line in run(sb, f"cat /proc/self/{name}").splitlines()]
        assert [(inside, outside) for inside, outside, _ in lines][0] == (0, 0)
        assert all(inside == outside for inside, outside, _ in lines)
        assert sum(count for _, _, count in lines) == identity.current().size


def test_su_setpriv_and_chown_work(sb):
    assert run(sb, "su nobody -s /bin/sh -c 'id -u'") == "65534\n"
    assert run(sb, "setpriv --reuid=1000 --regid=1000 --clear-groups id -u") == "1000\n"
    run(sb, "echo secret > /tmp/f && chown 1000:1000 /tmp/f && chmod 600 /tmp/f")
    assert run(sb, "setpriv --reuid=1000 --regid=1000 --clear-groups cat /tmp/f") == "secret\n"
    p = sb.exec("setpriv", "--reuid=1001", "--regid=1001", "--clear-groups", "cat", "/tmp/f")
    assert p.wait() != 0 and "Permission denied" in p.stderr.read()
    assert run(sb, "stat -c '%u %g' /tmp/f") == "1000 1000\n"


def test_a_volume_written_as_another_user_is_theirs_in_the_next_sandbox(sandboxes):
    vol = modal.Volume.from_name("identity-vol", create_if_missing=True)
    first = sandboxes(volumes={"/v": vol})
    run(first, "mkdir /v/app && chown 1000:1000 /v/app && "
               "setpriv --reuid=1000 --regid=1000 --clear-groups sh -c 'echo mine > /v/app/f; chmod 600 /v/app/f'")
    first.terminate(wait=True)
    second = sandboxes(volumes={"/v": vol})
    assert run(second, "stat -c '%u %g' /v/app/f") == "1000 1000\n"
    assert run(second, "setpriv --reuid=1000 --regid=1000 --clear-groups cat /v/app/f") == "mine\n"
    second.terminate(wait=True)
    # Its files are not the caller's own (rootless: another of its subordinate ids), yet it goes whole.
    directory = vol._directory()
    modal.Volume.objects.delete("identity-vol")
    assert not [name for name in os.listdir(directory.parent) if "identity-vol" in name]  # nor a renamed leftover


def test_one_sandbox_cannot_use_up_the_inotify_instances_of_another(sandboxes):
    # The kernel limits inotify instances per host uid, and every sandbox of this caller runs as
    # the same host ids: each sandbox gets a share (native/common/userns.c), so a greedy one stops first.
    grab = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while libc.inotify_init() >= 0 and len(fds) < 100000:
    fds.append(1)
print(len(fds))
"""
    greedy = sandboxes()
    p = greedy.exec("python3", "-u", "-c", grab + "import time; time.sleep(60)", bufsize=1)
    taken = int(next(iter(p.stdout)))
    other = sandboxes()
    q = other.exec("python3", "-c", grab)
    assert q.wait() == 0
    assert int(q.stdout.read()) >= min(taken, 16), "the first sandbox used up the second one's inotify instances"
