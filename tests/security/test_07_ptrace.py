"""Item 7: ptrace and /proc cannot reach pid 1 (sandbox-init: its listener, the
clients' fds), the supervisor, or another sandbox.  ptrace itself is allowed
between sandbox processes (as in Docker), so gdb and strace work."""

import psutil
import pytest

from ._inside import py_ok

pytestmark = pytest.mark.rootless

PTRACE_ATTACH, PTRACE_DETACH = 16, 17

ATTACK_INIT = """
pidfd = os.pidfd_open(1)
print(call("ptrace", 16, 1, 0, 0), call("pidfd_getfd", pidfd, 3, 0),
      attempt(lambda: open("/proc/1/mem", "rb")), attempt(lambda: os.readlink("/proc/1/fd/3")),
      attempt(lambda: open("/proc/1/environ", "rb")), attempt(lambda: os.open("/proc/1/fd/4", os.O_WRONLY)))
"""


def test_init_unreachable(sb):
    assert py_ok(sb, ATTACK_INIT) == "EPERM EPERM EACCES EACCES EACCES EACCES\n"


@pytest.mark.gvisor
def test_ptrace_between_sandbox_processes_allowed(sb):
    out = py_ok(sb, f"""
        import signal, time
        child = os.fork()
        if child == 0:
            time.sleep(30)
            os._exit(0)
        attached = call("ptrace", {PTRACE_ATTACH}, child, 0, 0)
        os.waitpid(child, 0)
        print(attached, call("ptrace", {PTRACE_DETACH}, child, 0, 0))
        os.kill(child, signal.SIGKILL)
    """)
    assert out == "0 0\n"


@pytest.mark.gvisor
def test_other_sandbox_and_supervisor_unreachable(sandboxes):
    attacker, victim = sandboxes(), sandboxes()
    victim_pids = [p.pid for p in psutil.Process(victim._record.supervisor.pid).children(recursive=True)]
    targets = [victim._record.supervisor.pid, attacker._record.supervisor.pid, *victim_pids]
    out = py_ok(attacker, f"""
        visible = {{int(p) for p in os.listdir("/proc") if p.isdigit()}}
        for pid in {targets!r}:
            if pid in visible:
                print(pid, "clashes with a pid of our own namespace")  # never an outside process
                continue
            print(call("ptrace", {PTRACE_ATTACH}, pid, 0, 0), call("kill", pid, 0))
    """)
    lines = [line for line in out.splitlines() if "clashes" not in line]
    assert lines and set(lines) == {"ESRCH ESRCH"}, out
    assert victim.exec("true").wait() == 0
