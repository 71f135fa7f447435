"""Red team (red13b): sandbox code can make init's parking of the entrypoint's stdin fail, and then a stopped exec
child holds its write end again: `sb.stdin.write_eof()` no longer ends the entrypoint's input (red13's finding,
which 850f97b fixed, comes back).

850f97b keeps the write end in flight on a socket pair of init's own (native/init/init_entry.c, park_stdin)
and takes it back only while an ENTRY_STDIN or ENTRY_STDIN_CLOSE request uses it. If the send fails, the fd is
"kept in hand (only a stopped child could then hold it)", and the next request parks it again. The send does
fail, whenever sandbox code wants: the kernel refuses SCM_RIGHTS (ETOOMANYREFS) once the descriptors the user
has in flight outnumber the sender's RLIMIT_NOFILE, and sandbox code shares init's kernel uid and limit
(test_61_red13b_fds_in_flight_deny_other_sandboxes). So: sandbox code holds descriptors in flight; the host's
next sb.stdin call makes init take the write end back, its fd reply fails (the call raises ConflictError) and
so does the park, so init keeps the write end in hand; sandbox code lets go of what it held and stops a fresh
exec child before its exec (tests/security/_red12_spinner.py): that child holds a copy of the write end, and
write_eof() closes only init's and the host's. `cat` never reads its end of input until the child is let go.

Two more ways, not tested here: a take can lose the write end altogether (handoff_recv with no free fd under
init's RLIMIT_NOFILE, which sandbox code may lower with prlimit(1, ...): the kernel drops a received
descriptor it cannot install, MSG_CTRUNC, and take_stdin's "cannot happen" branch forgets it; the entrypoint
reads end of file, and sb.stdin calls fail "the entrypoint has no open stdin"); and a park that fails at
start_entrypoint, when other sandboxes of the same host user already hold descriptors in flight, leaves the
write end in hand from the start.

Reproduced: bubblewrap and nsjail, rootless (pysbtest6); as root the same with PYSANDBOX_RED13B_ROOT=1 (off by
default: while the count is held every root sandbox on the host is denied). Severity: low (only the sandbox's
own entrypoint input is denied, as in red13), but it defeats 850f97b's fix.

Suggested fix: a park that cannot fail: keep the write end in a process of init's that never forks a child
(a small stdin keeper, to which ENTRY_STDIN/ENTRY_STDIN_CLOSE are forwarded), or fork exec children from a
spawner that holds nothing but what they need; failing that, if the park fails, refuse to fork exec children
while the write end is in hand (EAGAIN to the exec) rather than let a copy escape, and make take_stdin tell a
lost descriptor (MSG_CTRUNC) from none.

Fixed with test_61_red13b_fds_in_flight_deny_other_sandboxes's fix: sandbox code's RLIMIT_NOFILE is init's less a
margin (native/init/spawn.c, children_nofile), so what it holds in flight no longer reaches init's bound, and the
park succeeds. Left open: sandbox code may lower its own init's limit (prlimit, the same uid) and so make a park
or a take fail; that denies only its own sandbox's input, as red13 did."""

import os
import subprocess
import sys

import pytest

from .test_60_red13_stopped_child_holds_entry_stdin import _entrypoint_reading_stdin, stopped_child_then_write_eof
from .test_61_red13b_fds_in_flight_deny_other_sandboxes import hold_in_flight, let_go

pytestmark = pytest.mark.rootless


SECOND_WRITER = "import sys, pysandbox as m; sb = m.Sandbox.from_id(sys.argv[1]); sb.stdin.write('more'); sb.stdin.drain()"


def test_descriptors_held_in_flight_leave_the_park_and_a_stopped_child_holds_no_input(sandboxes, monkeypatch):
    sb = _entrypoint_reading_stdin(sandboxes, monkeypatch)
    holder, held = hold_in_flight(sb)
    try:
        if held[:1] != ["ETOOMANYREFS"]:
            pytest.fail(f"the holder did not reach the kernel's bound: {held}")
        # A process that has no copy yet asks init for one (and init parks it again); its copy goes with it.
        subprocess.run([sys.executable, "-c", SECOND_WRITER, sb.object_id], env=os.environ, check=True, timeout=60)
    finally:
        let_go(holder)
    stopped_child_then_write_eof(sb, "pipe")  # sb holds the host's copy (_entrypoint_reading_stdin wrote)
