"""Item 55: the witness of a terminal under gVisor (native/init/init_handoff.h, handoff_start_witness). gVisor's
terminal turns no key into a signal and tells the foreground group only to a process of its session, so a process
of init's lives in each pty process's session, and signals the group its foreground is with each ^C, ^\\ or ^Z the
relay reads. Sandbox code controls that session: the foreground group, the processes, the witness's own group.

* The foreground may be set only to a group of the session (gVisor refuses init's and another exec's): the
  witness signals a group only while its leader is of the session, never init nor another exec.
* The foreground may be the witness's own group: it signals it (a process sandbox code put there gets the
  key) and survives, and serves the next key.
* Another user's process takes nothing of it: its keys socket opens through /proc for nobody (a socket), and
  pidfd_getfd is refused; sandbox root's keys, through any socket it takes, are signals only it could send.
"""

import pytest

from ._inside import PRELUDE, sh

pytestmark = [pytest.mark.gvisor(only=True), pytest.mark.rootless]  # the witness is the gvisor runner's

# The session leader of a pty exec: points its terminal at init's and another exec's groups (refused), then at
# its witness's group with an accomplice of its own in it, then back at its own; says what happened.
_ATTACKER = r"""
import os, signal, sys
victim = int(sys.argv[1])
signal.signal(signal.SIGTTOU, signal.SIG_IGN)
for target in (1, victim):
    try:
        os.tcsetpgrp(0, target)
        print('pointed at', target, flush=True)
    except OSError as e:
        print('refused', target, e.errno, flush=True)
me, witness = os.getpid(), None
for pid in [int(x) for x in os.listdir('/proc') if x.isdigit()]:
    try:
        if pid != me and os.getsid(pid) == me and int(open(f'/proc/{pid}/stat').read().split(') ')[1].split()[1]) == 1:
            witness = pid
    except OSError:
        pass
print('witness', witness, flush=True)
# SIGINT blocked and waited for: a Python handler that a signal finds just before a sleep runs after it
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
accomplice = os.fork()
if accomplice == 0:
    signal.sigwait({signal.SIGINT})
    os.write(1, b'accomplice interrupted\n')
    os._exit(0)
os.setpgid(accomplice, os.getpgid(witness))
os.tcsetpgrp(0, os.getpgid(witness))
print('ready', flush=True)
os.waitpid(accomplice, 0)
os.tcsetpgrp(0, os.getpgrp())
os.kill(witness, 0)
print('witness alive; restored', flush=True)
signal.sigwait({signal.SIGINT})
print('interrupted', flush=True)
"""


def _read_until(p, marker):
    """The output up to the whole line `marker`."""
    marker += "\r\n"
    out = ""
    for chunk in p.stdout:
        out += chunk
        if marker in out:
            return out
    raise AssertionError(f"no {marker!r} in {out!r}")


def test_the_witness_signals_only_its_sessions_groups_and_survives_its_own(sandboxes):
    sb = sandboxes("sleep", "300")
    victim = sb.exec("sleep", "300")  # another exec: a session of its own
    victim_pid = int(sh(sb, "pgrep -x -f 'sleep 300' | tail -n 1")[1])
    p = sb.exec("python3", "-c", _ATTACKER, str(victim_pid), pty=True)
    out = _read_until(p, "ready")
    assert "pointed at" not in out, out  # gVisor's TIOCSPGRP takes only a group of the session
    assert "refused 1 " in out and f"refused {victim_pid} " in out, out
    assert "witness None" not in out, out
    p.stdin.write(b"\x03")  # to the witness's own group, where the accomplice is
    p.stdin.drain()
    out += _read_until(p, "restored")
    assert "accomplice interrupted" in out and "witness alive" in out, out
    p.stdin.write(b"\x03")  # the witness serves on: to the attacker's own group again
    p.stdin.drain()
    out += p.stdout.read()
    assert out.split("restored", 1)[1] == "\r\ninterrupted\r\n", out
    assert p.wait() == 0
    assert victim.poll() is None and sb.poll() is None


# Beside a pty exec: the keys socket of its witness (fd 3) and of its relay (fd 5, the witness's peer), through /proc
# and pidfd_getfd, as another user (nothing) and as root (whatever it gets, it writes SIGKILL's number and SIGINT's
# to it). The witness is the process of init's in another session than init's.
_TAKE_THE_KEYS = PRELUDE + r"""
import signal
init_session = os.getsid(1)
if sys.argv[1] == 'user':
    os.setgroups([]); os.setgid(1000); os.setuid(1000)
for pid in [int(x) for x in os.listdir('/proc') if x.isdigit() and x != '1' and int(x) != os.getpid()]:
    try:
        if not open(f'/proc/{pid}/cmdline', 'rb').read().startswith(b'/__pysandbox/init'):
            continue
        fd = 5 if os.getsid(pid) == init_session else 3
    except OSError:
        continue
    print('found', pid, fd, flush=True)
    taken = []
    try:
        taken.append(os.open(f'/proc/{pid}/fd/{fd}', os.O_RDWR | os.O_NONBLOCK))
    except OSError:
        pass
    pidfd = call('pidfd_open', pid, 0)
    got = call('pidfd_getfd', pidfd, fd, 0) if isinstance(pidfd, int) else pidfd
    if isinstance(got, int):
        taken.append(got)
    for t in taken:
        print('took', pid, fd, flush=True)
        for sig in (signal.SIGKILL, signal.SIGINT):
            try:
                os.write(t, bytes([sig]))
            except OSError:
                pass
"""


@pytest.mark.parametrize("who", ["user", "root"])
def test_no_one_else_feeds_the_witness(sandboxes, who):
    sb = sandboxes("sleep", "300")
    # Survives SIGINT (it is the foreground group's: the keys' target), not SIGKILL.
    p = sb.exec("sh", "-c", "trap 'echo got INT' INT; echo ready; while :; do sleep 0.1; done", pty=True)
    _read_until(p, "ready")
    thief = sb.exec("python3", "-c", _TAKE_THE_KEYS, who)
    out = thief.stdout.read() + thief.stderr.read()
    assert thief.wait() == 0, out
    assert "found" in out and " 3\n" in out and " 5\n" in out, out  # the witness and the relay
    if who == "user":
        assert "took" not in out, out
    assert p.poll() is None, "the witness signalled what no key of the terminal's asks for"
    p.stdin.write(b"\x03")  # the witness and the relay serve on
    p.stdin.drain()
    _read_until(p, "got INT")
    assert p.poll() is None and sb.poll() is None
