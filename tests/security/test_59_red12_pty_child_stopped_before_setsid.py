"""Red team (red12): sandbox code stops a pty exec's child before its setsid, and that exec's timeout never
ends it: the host's wait() hangs until the sandbox ends.

init ends an exec at its timeout with kill(-pid, SIGKILL) (init_exec.c, run_timers): "the child leads its own
process group (setsid)". A pty exec's child, since f7e11a1 forked and left to itself (fork_with_terminal,
`detached`), calls setsid only after resetting every signal's disposition and its mask: sandbox code (same
uid) that stops it before then (tests/security/_red12_spinner.py: SIGSTOP to each next pid, which catches a
new process within microseconds of its fork) leaves a child that leads no group. kill(-pid) fails (ESRCH), the
deadline is cleared (timed_out), and the stopped child stays: the exec never ends, and `wait()` of an exec
started with timeout=2 blocks for as long as the sandbox lives, the host bound on init's replies aside (init
answers everything else). The stopped child also holds a copy of every fd of init's (see
test_59_red12_stopped_pty_child_holds_other_relays). Low to medium: only the sandbox's own exec is denied, but
exec(timeout=) is the bound a host relies on to never wait on sandbox code for longer.

Before f7e11a1 the same stop froze init itself (test_58). Suggested fix: at the deadline (and wherever init
kills an exec's group) also kill the pid itself: kill(-pid, SIGKILL) then kill(pid, SIGKILL) (a stopped process
dies of SIGKILL), or have the child setsid first of all (it still has a window, but no code of its own before
it) and fall back on kill(pid) when the group is not there.

Fixed: at the deadline init kills the child itself as well as its group (run_timers). Since init reports an
exec's start once its child exec'd, the caught exec's exec() call itself returns then, its process ended."""

import threading
import time

import pytest

from ._inside import start_while
from ._red12_spinner import SPINNER

pytestmark = pytest.mark.rootless


def test_a_pty_exec_stopped_before_its_setsid_still_ends_at_its_timeout(sb):
    spinner = sb.exec("python3", "-S", "-c", SPINNER, "pty")
    time.sleep(1)  # python's start: the spinner looks at the pids from the next one on
    started = start_while(lambda: spinner.poll() is None, lambda: sb.exec("true", pty=True, timeout=2))
    if spinner.poll() is None:
        pytest.skip("the spinner never caught a pty child before its setsid (a race)")
    assert spinner.wait() == 0, spinner.stderr.read()
    caught = spinner.stdout.read().split()
    codes = []
    waiter = threading.Thread(target=lambda: codes.append([p.wait() for p in started]), daemon=True)
    waiter.start()
    waiter.join(30)  # every exec's timeout is 2 s
    assert codes, "an exec started with timeout=2 was still running 30 s later"
    assert sb.exec("test", "-e", f"/proc/{caught[-1]}").wait() == 1  # killed at its timeout, though stopped
