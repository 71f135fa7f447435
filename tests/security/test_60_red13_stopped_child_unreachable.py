"""Red team (red13), a guard that holds: a child of init that sandbox code stops between its fork and its exec
is as unreachable as init itself.

Since cd5c66c every exec's child (pipe execs too) is a fork() of init left to itself until its exec
(native/init/spawn.c, fork_child): a copy of init's memory (its configuration, every connection's state) and
of all of init's descriptors (the listener, other clients' connections, the entrypoint's stdin, relay
sockets), running init's uid and capabilities, which sandbox code can stop at any instant before the exec
(tests/security/_red12_spinner.py). test_07 checks that sandbox code reaches none of this through pid 1; this
checks the same through the stopped child: init is not dumpable (PR_SET_DUMPABLE 0), fork keeps that until the
exec, and sandbox root has no CAP_SYS_PTRACE, so ptrace (ATTACH and SEIZE), pidfd_getfd, /proc/<pid>/mem,
/proc/<pid>/fd/N and /proc/<pid>/environ are refused. Checked: bubblewrap and nsjail, root and rootless, both
while the child is stopped and after a failed attempt. Not a finding."""

import pytest

from pysandbox import bounds

from ._inside import py_ok
from ._red12_spinner import catch_stopped_child

pytestmark = pytest.mark.rootless

PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206

ATTACK_CHILD = f"""
pid = int(sys.argv[1])
state = open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[0]
fds = []
try:
    fds = os.listdir(f"/proc/{{pid}}/fd")
except OSError:
    pass
pidfd = os.pidfd_open(pid)
results = [call("ptrace", {PTRACE_ATTACH}, pid, 0, 0), call("ptrace", {PTRACE_SEIZE}, pid, 0, 0)]
results += [call("pidfd_getfd", pidfd, int(fd), 0) for fd in fds or ["3"]]
results += [attempt(lambda: open(f"/proc/{{pid}}/mem", "rb")), attempt(lambda: open(f"/proc/{{pid}}/environ", "rb"))]
results += [attempt(lambda: os.readlink(f"/proc/{{pid}}/fd/{{fd}}")) for fd in fds or ["3"]]
results += [attempt(lambda: os.open(f"/proc/{{pid}}/fd/{{fd}}", os.O_RDWR)) for fd in fds or ["3"]]
print(state, len(fds) > 3, sorted(set(results)))
"""


def test_a_stopped_exec_child_before_its_exec_is_unreachable(sb, monkeypatch):
    monkeypatch.setenv(bounds.variable("init_reply_s"), "10")
    started, caught = catch_stopped_child(sb, "pipe")
    caught = caught[-1]
    out = py_ok(sb, ATTACK_CHILD, caught)
    # Stopped; its fds can be counted (sandbox root owns a non-dumpable process's /proc entries here), not reached.
    assert out == "T True ['EACCES', 'EPERM']\n", out
    sb.exec("kill", "-CONT", caught).wait()
    for process in started:
        assert process.wait() == 0
