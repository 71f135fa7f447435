"""Red team (red11): a user namespace maker that fails after it was mapped left its caller waiting for good.
Fixed: the fd comes over a seqpacket pair, whose end of file (the maker and its holder exited) ends the wait.

userns_finish (native/common/userns.c) waits for the inner namespace's fd on a SOCK_DGRAM socketpair
(fd_receive): the maker sends it last, and since session 11 (194ce4d) its arrival is the only sign of success.
A datagram socket has no end of file: when the maker fails after the parent mapped it (set_limits, spawn_inner's
clone: EAGAIN under RLIMIT_NPROC or a pids limit that other processes of the caller's uid, its other sandboxes
among them, fill at that moment; map_inner, the open of the namespace) and exits without sending, recvmsg blocks
for ever. sandbox-rmtree (gc, a volume's delete) then never returns; the supervisor's runner child never execs,
so the supervisor stays in its read of the runner's failure pipe, where it takes no signal (SIGTERM is read by
its loop only): terminate() cannot end it, and the sandbox's cgroup and processes stay.

Seen through the product (rootless, this host's RLIMIT_NPROC fallback, PYSANDBOX_PIDS_LIMIT between 3 and 8,
bwrap): "sandbox-supervisor: clone the sandbox's user namespace: Resource temporarily unavailable" in the
supervisor's log, the maker a zombie, the runner child in recvmsg, SIGTERM pending in the supervisor (ShdPnd),
terminate(wait=True) waiting past the sandbox's timeout; after a SIGKILL of the supervisor the runner child lives
on, an orphan of pid 1. The same probe at 7236147 failed those creates cleanly ("the sandbox's user namespace
could not be made"). Here the maker is made to fail the simplest way: as root, a plan that does not map the
caller's own uid, so that its clone of the inner namespace is refused (EPERM) after the maps were written."""

import os
import subprocess

import pytest

from pysandbox import settings


def test_a_maker_failing_after_the_maps_is_a_failure_not_a_hang(tmp_path):
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    unmapped = os.geteuid() + 1  # an id range that leaves out the caller's own uid
    plan = ["--userns-uid", f"0:{unmapped}:1", "--userns-gid", f"0:{os.getegid() + 1}:1"]
    if os.geteuid() != 0:
        pytest.skip("only root may write a map of ids it does not own (newuidmap checks /etc/subuid)")
    try:
        done = subprocess.run([settings.native_binary("sandbox-rmtree"), *plan, str(tree)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=20)  # a bound for a loaded machine
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"sandbox-rmtree still waits for its maker: {exc.stderr!r}") from None
    assert "clone the sandbox's user namespace" in done.stderr, done.stderr  # the maker's failure, said
    assert done.returncode == 0 and not tree.exists(), done.stderr  # it falls back to the caller's own rights
