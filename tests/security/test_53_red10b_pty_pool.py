"""Red team, session 10 (second pass): PYSANDBOX_PTYS_MAX bounds each sandbox's devpts, not all of them together.

The finding: every devpts instance but the host's draws from one pool, kernel.pty.max less kernel.pty.reserve
(3072 by default), and every sandbox's own bound is PYSANDBOX_PTYS_MAX (256) whatever else runs: the bounds of
live sandboxes add up past the pool from the 13th sandbox on, and nothing refuses that create. Hostile code in
that many sandboxes (one tenant's jobs, or an image run many times), each opening /dev/ptmx up to its bound, so
still takes every terminal on the host: every other sandbox's exec(pty=True), another user's too, and every
other container's. One sandbox alone no longer can (test_51). The test does not hold the terminals, which
would take them from everything else on this shared host too: it makes the sandboxes, reads the bound each
one's devpts was mounted with, and asserts that together they fit in the pool. gVisor's terminals are its own.
"""

import re
from pathlib import Path

import pytest

from pysandbox import bounds
from pysandbox.exception import ResourceExhaustedError

pytestmark = pytest.mark.rootless


def _pool() -> int:
    """The terminals all devpts instances but the host's share (drivers/tty/pty.c)."""
    kernel = Path("/proc/sys/kernel/pty")
    return int((kernel / "max").read_text()) - int((kernel / "reserve").read_text())


def _devpts_max(sb) -> int:
    """The max= the sandbox's /dev/pts is mounted with, as its own mount table says."""
    table = sb.exec("cat", "/proc/self/mountinfo").stdout.read()
    found = [line for line in table.splitlines() if " /dev/pts " in line and " - devpts " in line]
    assert len(found) == 1, table
    return int(re.search(r"\bmax=(\d+)", found[0]).group(1))


@pytest.mark.xfail(strict=True, reason="red10b: the per-sandbox pty bound does not bound all sandboxes together")
def test_sandboxes_together_cannot_take_the_hosts_terminal_pool(sandboxes, monkeypatch):
    monkeypatch.delenv(bounds.variable("ptys"), raising=False)  # the default protects
    pool, made = _pool(), []
    # The attack: enough sandboxes that, each hogging its own bound, they would hold the whole pool.
    wanted = pool // bounds.get("ptys") + 1
    try:
        for _ in range(wanted):
            made.append(sandboxes("sleep", "300"))
    except ResourceExhaustedError:
        pass  # a refusal that keeps the bounds within the pool is a secure outcome
    assert made, "no sandbox was made"
    maxes = [_devpts_max(sb) for sb in made]
    assert all(m >= 1 for m in maxes), maxes  # each one is bounded: the attack is on the sum
    assert sum(maxes) <= pool, (f"{len(made)} sandboxes' devpts bounds add up to {sum(maxes)} terminals, past the "
                                f"host's pool of {pool}: together they can take every terminal on the host")
