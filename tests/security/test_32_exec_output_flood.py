"""A process floods stdout and stderr at a caller that waits before reading (issue 12).

Output is what sandboxed code controls: the host keeps at most the unread-output bound
of it per stream, never blocks on it, and says what it dropped.
"""

import psutil
import pytest

from pysandbox.exception import ResourceExhaustedError

pytestmark = pytest.mark.rootless

BOUND = 16 << 20
FLOOD = "head -c 1000000000 /dev/zero & head -c 1000000000 /dev/zero >&2; wait"


def test_a_flood_on_both_streams_costs_the_caller_at_most_the_bound(sb, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_EXEC_UNREAD_OUTPUT_MAX", str(BOUND))
    rss = psutil.Process().memory_info().rss
    p = sb.exec("sh", "-c", FLOOD, text=False)
    assert p.wait() == 0  # 2 GB went through, the process never blocked on us
    grown = psutil.Process().memory_info().rss - rss
    assert grown < 2 * BOUND + (64 << 20), f"the caller grew by {grown >> 20} MiB"
    for reader in (p.stdout, p.stderr):
        with pytest.raises(ResourceExhaustedError, match=r"PYSANDBOX_EXEC_UNREAD_OUTPUT_MAX.*dropped") as cut:
            reader.read()
        assert len(cut.value.partial) == BOUND
