"""Matrix 4: a disk fill stops at ephemeral_disk= with ENOSPC, and the host disk is untouched.

With ephemeral_disk= the sandbox's writable root (and /tmp, which lives in it)
is a tmpfs of that size: one budget for everything it can write, enforced by
the kernel, the same as root and unprivileged. Nothing reaches the host's disk.
"""

import errno
import os

import pytest

from pysandbox._state import paths

pytestmark = pytest.mark.rootless

FILL = """
import errno, sys
written = 0
try:
    with open(sys.argv[1], "wb") as f:
        while True:
            f.write(b"x" * (1 << 20))
            f.flush()
            written += 1
except OSError as exc:
    print(exc.errno, written)
"""


def host_bytes(path):
    return sum(os.lstat(os.path.join(d, name)).st_size for d, _, names in os.walk(path) for name in names)


@pytest.mark.parametrize("target", ["/tmp/fill", "/root/fill", "/fill"])
def test_a_disk_fill_stops_with_enospc_at_the_limit(sandboxes, target):
    sb = sandboxes(ephemeral_disk=16)
    p = sb.exec("python3", "-c", FILL, target)
    code, megabytes = p.stdout.read().split()
    assert p.wait() == 0
    assert int(code) == errno.ENOSPC
    assert 8 <= int(megabytes) <= 16  # it got its budget, and not a byte more
    assert host_bytes(paths.sandbox_dir(sb.object_id) / "upper") == 0  # nothing landed on the host's disk


def test_root_and_tmp_share_one_budget(sandboxes):
    sb = sandboxes(ephemeral_disk=16)
    assert sb.exec("dd", "if=/dev/zero", "of=/tmp/a", "bs=1M", "count=12").wait() == 0
    p = sb.exec("dd", "if=/dev/zero", "of=/root/b", "bs=1M", "count=12")
    assert p.wait() == 1
    assert "No space left on device" in p.stderr.read()
    sb.exec("rm", "/tmp/a").wait()
    assert sb.exec("dd", "if=/dev/zero", "of=/root/c", "bs=1M", "count=12").wait() == 0  # freed space is reusable


def test_the_sandbox_still_works_on_a_limited_disk(sandboxes):
    sb = sandboxes(ephemeral_disk=64, workdir="/repo")
    sb.filesystem.write_text("hello", "/repo/greeting.txt")
    assert sb.exec("cat", "greeting.txt").stdout.read() == "hello"
    stat = sb.exec("stat", "-f", "-c", "%T %b %S", "/").stdout.read().split()
    assert stat[0] == "tmpfs" and int(stat[1]) * int(stat[2]) == 64 << 20
