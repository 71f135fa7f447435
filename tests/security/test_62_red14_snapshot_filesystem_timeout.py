"""Red team (red14): `sb.snapshot_filesystem(timeout=...)` ignored its timeout: the copy of the upper directory
(`cp -a` in a helper sandbox, image/snapshot.py) ran under the image build's bound, an hour, whatever the caller
asked for (Modal's default is 55 s). Sandbox code chooses what is copied: a hundred thousand empty files took
13 s with timeout=1 here, and a file it grows as fast as cp reads it (extended sparse, read back as zeros and
written out whole) keeps the copy going, and writing to the host's disk, for the whole hour. Severity: low to
medium (a host-side call hangs past the bound its caller set, on sandbox-controlled data).

Fix: the caller's timeout bounds the helper sandbox that copies; past it the call raises TimeoutError (as
snapshot_directory does) and the half-made layer is removed."""

import pytest

from pysandbox.exception import TimeoutError

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

MANY = "import os\nos.mkdir('/root/many')\nfor i in range(100000):\n    open(f'/root/many/{i}', 'w').close()"


def test_snapshot_filesystem_keeps_to_its_timeout(sandboxes, debian):
    sb = sandboxes("sleep", "600", image=debian, timeout=600)
    assert sb.exec("python3", "-c", MANY).wait() == 0
    with pytest.raises(TimeoutError, match="within 1s"):
        sb.snapshot_filesystem(timeout=1)
    assert sb.exec("rm", "-r", "/root/many").wait() == 0
    snapshot = sb.snapshot_filesystem()  # nothing of the failed copy stands in the way
    assert snapshot.object_id
