"""Item 10: no nested user namespace (the door to capabilities over new
mounts and to CVE-2022-0492's cgroup v1 release_agent), by any call."""

import pytest

from ._inside import py_ok, sh

pytestmark = pytest.mark.rootless

CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWCGROUP, SIGCHLD = 0x10000000, 0x20000, 0x02000000, 17


@pytest.mark.gvisor
def test_nested_user_namespace_refused(sb):
    out = py_ok(sb, f"""
        clone3_args = (ctypes.c_uint64 * 11)({CLONE_NEWUSER}, 0, 0, 0, {SIGCHLD})
        print(call("unshare", {CLONE_NEWUSER}), call("clone", {CLONE_NEWUSER | SIGCHLD}, 0, 0, 0, 0),
              call("clone3", ctypes.byref(clone3_args), ctypes.sizeof(clone3_args)))
    """)
    # clone3 fails before looking at its flags: ENOSYS sends libc back to clone.
    assert out == "EPERM EPERM ENOSYS\n"
    code, out = sh(sb, "unshare -U true; unshare -Ur true")
    assert code != 0 and out.count("Operation not permitted") == 2


def test_cgroup_release_agent_unreachable(sb):
    # CVE-2022-0492: mount a cgroup v1 hierarchy (in a new user namespace if
    # need be) and write its release_agent.  Every step is refused, and no
    # cgroupfs is mounted to begin with.
    out = py_ok(sb, f"""
        os.mkdir("/tmp/cg")
        print(call("mount", b"cgroup", b"/tmp/cg", b"cgroup", 0, b"rdma"),
              call("unshare", {CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP}),
              os.path.exists("/sys/fs/cgroup"), "cgroup" in open("/proc/self/mountinfo").read())
    """)
    assert out == "EPERM EPERM False False\n"
