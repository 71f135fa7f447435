"""Item 41: what the gvisor runner adds (docs/RUNNERS.md). Sandbox code's system calls are served by
gVisor's kernel, not the host's: `uname` and /proc/version describe gVisor's, and a call gVisor does not
implement fails with ENOSYS where the host kernel would have answered (process_madvise on a descriptor
that is no pidfd: EBADF from the host's). pysandbox's own seccomp filter stays
in force under it (its denials still answer EPERM) and the host's secrets stay unreadable: the gofer
reads the host's files as the sandbox identity's ids."""

import os

import pytest

from ._inside import py_ok, sh

pytestmark = [pytest.mark.gvisor(only=True), pytest.mark.rootless]  # its sandboxes are the gvisor runner's
PROCESS_MADVISE = 440  # the same number on both architectures


@pytest.fixture
def gvisor_sb(sandboxes):
    return sandboxes("sleep", "300")


def test_the_kernel_inside_is_gvisors_not_the_hosts(gvisor_sb):
    code, out = sh(gvisor_sb, "uname -r; cat /proc/version")
    release, version = out.splitlines()[0], out.splitlines()[1]
    assert code == 0 and release != os.uname().release
    with open("/proc/version") as host:
        assert version != host.read().strip() and os.uname().release not in version


def test_a_syscall_outside_gvisors_set_fails_with_enosys(gvisor_sb):
    assert py_ok(gvisor_sb, f"print(call({PROCESS_MADVISE}, 0, 0, 0, 0, 0))").strip() == "ENOSYS"


def test_pysandboxs_filter_and_masks_hold_under_it(gvisor_sb):
    assert py_ok(gvisor_sb, "print(call('keyctl', 0, 0), call('unshare', 0x10000000))").split() == ["EPERM", "EPERM"]
    code, out = sh(gvisor_sb, "cat /etc/shadow; id -u")
    # Sandbox root is the sandbox identity's root to the gofer (the OCI user namespace): host DAC refuses it.
    assert out.startswith("0\n") and "/etc/shadow: Permission denied" in out and "root:" not in out
