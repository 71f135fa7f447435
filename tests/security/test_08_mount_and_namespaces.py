"""Item 8: mount, umount, pivot_root, the new mount API, unshare and setns are refused."""

import pytest

from ._inside import py_ok, sh

pytestmark = pytest.mark.rootless

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWUTS, CLONE_FILES = 0x20000, 0x40000000, 0x20000000, 0x04000000, 0x400


def host_mounts():
    with open("/proc/self/mountinfo") as f:
        return f.read()


@pytest.mark.gvisor
def test_mount_syscalls_refused(sb):
    before = host_mounts()
    out = py_ok(sb, """
        results = {
            "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, 0),
            "umount2": call("umount2", b"/tmp", 0),
            "pivot_root": call("pivot_root", b"/tmp", b"/tmp"),
            "open_tree": call("open_tree", -100, b"/tmp", 1),
            "move_mount": call("move_mount", -100, b"/tmp", -100, b"/mnt", 0),
            "fsopen": call("fsopen", b"tmpfs", 0),
            "fspick": call("fspick", -100, b"/tmp", 0),
            "fsconfig": call("fsconfig", 3, 6, 0, 0, 0),
            "fsmount": call("fsmount", 3, 0, 0),
            "mount_setattr": call("mount_setattr", -100, b"/tmp", 0, 0, 0),
        }
        print(sorted(set(results.values())), results)
    """)
    assert out.startswith("['EPERM'] "), out
    assert host_mounts() == before


@pytest.mark.gvisor
def test_unshare_with_namespace_flags_refused(sb):
    out = py_ok(sb, f"""
        print([call("unshare", flag) for flag in ({CLONE_NEWNS}, {CLONE_NEWNET}, {CLONE_NEWPID}, {CLONE_NEWUTS})],
              call("unshare", {CLONE_FILES}))
    """)
    assert out == "['EPERM', 'EPERM', 'EPERM', 'EPERM'] 0\n"
    assert sh(sb, "unshare -m true; unshare -n true")[1].count("Operation not permitted") == 2


def test_setns_refused(sb):
    out = py_ok(sb, """
        fds = [os.open(f"/proc/self/ns/{ns}", os.O_RDONLY) for ns in ("mnt", "net", "user", "pid")]
        print([call("setns", fd, 0) for fd in fds])
    """)
    assert out == "['EPERM', 'EPERM', 'EPERM', 'EPERM']\n"
