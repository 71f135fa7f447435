"""The /proc masks (pure logic on a fake /proc) and the seccomp table's build on both architectures."""

import os
import shutil
import subprocess

import pytest

import setup
from pysandbox.runtime import confinement


def masks(fs, files):
    for path, (mode, kind) in files.items():
        if kind == "dir":
            fs.create_dir(path)
        elif kind == "full-dir":
            fs.create_file(path + "/entry")
        else:
            fs.create_file(path)
        os.chmod(path, mode)  # after creation: the fake file system applies the umask
    return confinement.proc_mask_args.__wrapped__()


def test_masks_only_what_others_can_read_or_write(fs):
    args = masks(fs, {
        "/proc/keys": (0o444, "file"),          # readable: masked
        "/proc/timer_list": (0o400, "file"),    # root only: already closed
        "/proc/latency_stats": (0o200, "file"),  # root only
        "/proc/sched_debug": (0o222, "file"),   # writable by others: masked
        "/proc/acpi": (0o555, "dir"),           # empty: nothing to hide
        "/proc/scsi": (0o555, "full-dir"),      # masked by an empty read-only tmpfs
    })
    assert args == (
        "--ro-bind", "/dev/null", "/proc/keys",
        "--ro-bind", "/dev/null", "/proc/sched_debug",
        "--tmpfs", "/proc/scsi", "--remount-ro", "/proc/scsi",
    )


def test_nothing_to_mask_on_a_bare_proc(fs):
    fs.create_dir("/proc")
    assert confinement.proc_mask_args.__wrapped__() == ()


def compile_filter(compiler, tmp_path):
    result = subprocess.run([compiler, *setup.CFLAGS, "-c", "-o", str(tmp_path / "seccomp.o"),
                             str(setup.NATIVE / "init" / "seccomp.c")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_filter_builds_for_the_host(tmp_path):
    compile_filter("cc", tmp_path)


@pytest.mark.parametrize("compiler", ["aarch64-linux-gnu-gcc"])
def test_filter_builds_for_arm64(compiler, tmp_path):
    if shutil.which(compiler) is None:
        pytest.fail(f"{compiler} is needed to check the seccomp table for arm64: apt-get install gcc-aarch64-linux-gnu")
    compile_filter(compiler, tmp_path)
