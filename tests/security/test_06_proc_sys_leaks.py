"""Item 6: what /proc and /sys tell a sandbox about the host."""

import os

import pytest

from pysandbox.runtime import confinement

from ._inside import py_ok, sh

pytestmark = pytest.mark.rootless


@pytest.mark.gvisor
def test_masked_proc_paths_tell_nothing(sb):
    # Every path runc masks: absent on this kernel, closed to sandbox root,
    # or masked by us (an unreadable /dev/null, an empty directory).
    out = py_ok(sb, f"""
        for path in {confinement.PROC_MASKED!r}:
            try:
                content = os.listdir(path) if os.path.isdir(path) else open(path, "rb").read(4096)
                print(path, "empty" if not content else "LEAKS")
            except OSError as e:
                print(path, errno.errorcode[e.errno])
    """)
    outcomes = dict(line.split() for line in out.splitlines())
    assert set(outcomes) == set(confinement.PROC_MASKED)
    assert set(outcomes.values()) <= {"ENOENT", "EACCES", "empty"}, outcomes


def test_readable_proc_files_are_masked(sb):
    masked = confinement.proc_mask_args()
    if os.path.exists("/proc/keys"):  # readable by everyone wherever it exists
        assert masked[masked.index("/proc/keys") - 2:][:3] == ("--ro-bind", "/dev/null", "/proc/keys")
        # bwrap binds a nodev /dev/null, nsjail a file of mode 000 (docs/RUNNERS.md): nothing opens either.
        assert sh(sb, "cat /proc/keys") == (1, "cat: /proc/keys: Permission denied\n")
        assert sh(sb, "chmod 644 /proc/keys; echo x > /proc/keys")[0] != 0


def test_proc_shows_only_the_sandbox(sb):
    code, out = sh(sb, "ls /proc | grep -E '^[0-9]+$' | sort -n | head -1; cat /proc/1/cmdline")
    first_pid, cmdline = out.split("\n", 1)
    assert first_pid == "1" and cmdline.startswith("/__pysandbox/init")


def test_proc_sys_and_kernel_knobs_not_writable(sb):
    out = py_ok(sb, """
        results = []
        for path in ("/proc/sys/kernel/hostname", "/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches",
                     "/proc/sysrq-trigger", "/proc/sys/kernel/modprobe"):
            try:
                with open(path, "w") as f:
                    f.write("1")
                results.append("WROTE:" + path)
            except OSError as e:
                results.append(errno.errorcode[e.errno])
        print(" ".join(results))
    """)
    assert set(out.split()) <= {"EACCES", "EROFS", "ENOENT"}, out


def test_no_sys(sb):
    assert sh(sb, "ls /sys") == (2, "ls: cannot access '/sys': No such file or directory\n")


def test_kernel_addresses_hidden(sb):
    code, out = sh(sb, "head -3 /proc/kallsyms | cut -d' ' -f1; head -2 /proc/iomem | cut -d' ' -f1")
    assert code == 0 and set(out.split()) == {"0000000000000000", "00000000-00000000"}
