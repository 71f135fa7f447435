"""Item 45: exec(pty=True), whose terminal init makes inside the sandbox and a process of init's relays to the
host's pipes (native/init/init_exec.c, docs/ARCHITECTURE.md), under every runner. Sandbox code runs beside the
relay and controls everything on the terminal's far side.

* A process that floods its terminal, or never reads it, blocks only its relay: init serves on.
* Sandbox code can end the relay: the host's output ends, the process loses its terminal (SIGHUP) and
  its exit is reported as usual; nothing waits for ever.
* The relays are capped (HANDOFF_RELAYS_MAX): more terminals than that at once get a clear error, never a
  sandbox whose pids run out.
* Sandbox code opens none of the relay's descriptors through /proc, nor signals it, as another user; as root
  too under bwrap and nsjail (init, and so its relays, are not dumpable), while gVisor lets sandbox root open
  its pipes: the end of the terminal's process comes on a socket, which /proc opens for nobody.
"""

import threading
import time

import pytest

from pysandbox.exception import ResourceExhaustedError

from ._inside import sh

pytestmark = [pytest.mark.gvisor, pytest.mark.rootless]  # the relay is every runner's

# A relay is a process of init's in init's session (under gVisor, a terminal's witness is one in the terminal's).
_KILL_RELAYS = ("for i in $(seq 300); do for p in /proc/[0-9]*; do n=${p#/proc/}; [ $n != 1 ] && "
                "[ \"$(head -c 17 $p/cmdline)\" = /__pysandbox/init ] && "
                "[ \"$(cut -d' ' -f6 $p/stat)\" = \"$(cut -d' ' -f6 /proc/1/stat)\" ] && kill -9 $n && echo killed && "
                "exit; done; sleep 0.1; done")


def test_a_flooding_terminal_stalls_nothing(sandboxes):
    sb = sandboxes("sleep", "300")
    # More than the pipe and the relay hold, which nobody reads while it runs.
    flood = sb.exec("sh", "-c", "yes flood | head -n 300000; sleep 300", pty=True, timeout=5)
    blind = sb.exec("sh", "-c", "sleep 300", pty=True)  # nor reads its own input
    blind.stdin.write(b"x" * (1 << 20))  # more than the terminal takes: only the relay waits
    threading.Thread(target=blind.stdin.drain, daemon=True).start()
    assert sh(sb, "echo serving") == (0, "serving\n")
    assert flood.wait() == -1  # the exec's own timeout, as under the other runners
    assert flood.stdout.read() == "flood\r\n" * 300000


def test_ending_the_terminal_relay_stalls_nothing(sandboxes):
    sb = sandboxes("sleep", "300")
    p = sb.exec("cat", pty=True)
    code, out = sh(sb, _KILL_RELAYS)
    assert "killed" in out, out
    ended = []
    waiting = threading.Thread(target=lambda: ended.append((p.stdout.read(), p.wait())), daemon=True)
    waiting.start()
    waiting.join(60)
    assert ended, "the host still waits on a terminal whose relay sandbox code ended"
    assert ended[0][1] == 129, ended  # SIGHUP: its terminal hung up, as init tells it when the relay ends
    assert sh(sb, "echo serving") == (0, "serving\n")


def test_more_terminals_than_relays_is_a_clear_error(sandboxes, monkeypatch):
    # Under gVisor the pids cgroup counts the Sentry's ptrace stubs' threads (docs/RUNNERS.md): 64 terminals
    # with their relays and witnesses hold ~1,650 at rest, and their ending at once on a loaded host took the
    # default 2048 (the whole sandbox ended, status 2). This test is about the relays' bound, not that one.
    monkeypatch.setenv("PYSANDBOX_PIDS_LIMIT", "8192")
    sb = sandboxes("sleep", "300")
    held = []
    with pytest.raises(ResourceExhaustedError, match="too many terminals relayed"):
        for _ in range(100):
            held.append(sb.exec("sleep", "301", pty=True))
    assert len(held) == 64  # HANDOFF_RELAYS_MAX, native/init/init_handoff.h
    assert sh(sb, "echo serving") == (0, "serving\n")
    assert sh(sb, "pkill -x -f 'sleep 301'")[0] == 0  # the held ones, not the entrypoint
    for p in held:
        assert p.wait() == -15 or p.wait() == 143
    assert sb.exec("tty", pty=True).stdout.read().startswith("/dev/pts/")  # each relay went with its process


# Red team (red5): an unprivileged process beside a terminal's relay (init's, uid 0) tries its descriptors
# through /proc (the host's pipes, the terminal's master, the end pipe that names the group it signals) and
# signals it. gVisor lists another user's descriptors (readlink), but opens none of them for it.
_UNPRIVILEGED_PROBE = r"""
import os, signal
os.setgroups([]); os.setgid(1000); os.setuid(1000)
for pid in [int(x) for x in os.listdir('/proc') if x.isdigit() and int(x) != os.getpid()]:
    try:
        if not open(f'/proc/{pid}/cmdline', 'rb').read().startswith(b'/__pysandbox/init') or pid == 1:
            continue
    except OSError:
        continue
    print('relay', pid)
    for fd in range(5):
        for mode in (os.O_RDONLY, os.O_WRONLY):
            try:
                target = os.readlink(f'/proc/{pid}/fd/{fd}')
                os.close(os.open(f'/proc/{pid}/fd/{fd}', mode | os.O_NONBLOCK))
                if not target.startswith('/dev/pts/ptmx'):  # a path: a new terminal of its own, not the relay's
                    print('opened', fd, mode, target)
            except OSError:
                pass
    for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGINT):
        try:
            os.kill(pid, sig)
            print('signalled', sig)
        except OSError:
            pass
"""


def test_an_unprivileged_process_reaches_no_relay(sandboxes):
    sb = sandboxes("sleep", "300")
    p = sb.exec("sh", "-c", "read x; echo got $x", pty=True)
    probe = sb.exec("python3", "-c", _UNPRIVILEGED_PROBE)
    out = probe.stdout.read() + probe.stderr.read()
    assert probe.wait() == 0, out
    assert out.startswith("relay ") and "opened" not in out and "signalled" not in out, out
    p.stdin.write(b"still\n")  # its relay serves on
    p.stdin.drain()
    assert "got still" in p.stdout.read() and p.wait() == 0


# Red team (red5), fixed (the end is a socket now, which /proc does not open): sandbox root opened the relay's
# end pipe through /proc/RELAY/fd/4 (gVisor lets root open a non-dumpable process's descriptors) and kept a
# write end of it; with a process of its own still holding
# the terminal, the relay never learns that its process ended: the host's output never ends, and the relay
# keeps one of the HANDOFF_RELAYS_MAX places for the sandbox's life (64 such execs: no pty exec any more).
# Under bwrap and nsjail /proc does not even name the relay's descriptors (readlink: EACCES, it is not dumpable).
_HOLD_THE_END = r"""
import os, time
for pid in [int(x) for x in os.listdir('/proc') if x.isdigit() and x != '1']:
    try:
        if open(f'/proc/{pid}/cmdline', 'rb').read().startswith(b'/__pysandbox/init'):
            try:
                os.readlink(f'/proc/{pid}/fd/4')  # a relay's: it has an end descriptor
            except PermissionError as e:
                print('unlisted', pid, e.errno, flush=True)
                continue
            try:
                os.open(f'/proc/{pid}/fd/4', os.O_WRONLY)  # kept
                print('held', pid, flush=True)
            except OSError as e:
                print('refused', pid, e.errno, flush=True)
    except OSError:
        pass
if os.fork() == 0:
    os.setsid()
    null = os.open('/dev/null', os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    time.sleep(1000)
"""


def test_a_held_end_pipe_does_not_keep_the_relay_past_its_process(sandboxes):
    sb = sandboxes("sleep", "300")
    p = sb.exec("sh", "-c", "sleep 2; (sleep 1000 < /proc/self/fd/0 > /dev/null 2>&1 &); exit 0", pty=True)
    holder = sb.exec("python3", "-c", _HOLD_THE_END)
    assert holder.wait() == 0 and holder.stdout.read().startswith(("held ", "refused ", "unlisted ")), \
        holder.stderr.read()
    ended = []
    waiting = threading.Thread(target=lambda: ended.append(p.stdout.read()), daemon=True)
    waiting.start()
    assert p.wait() == 0
    waiting.join(30)
    assert ended, "the host's output of an ended pty exec stays open: sandbox code holds its relay's end pipe"


# Red team (red5), fixed (the end is a socket now, which /proc does not open): sandbox root predicted the next
# relay's pid (gVisor's pids are sequential), opened its end pipe through /proc, took init's message (the
# process's pid, the group ^C goes to) and put another group's in its place: here the entrypoint's, which the
# host's ^C on an exec's terminal then interrupted. Under bwrap and nsjail /proc does not name the relay's
# descriptors (readlink: EACCES, it is not dumpable).
_STEAL_THE_GROUP = r"""
import os, struct, sys, time
target, end, fd = os.getpid() + 1, time.time() + 10, None
while fd is None and time.time() < end:
    try:
        os.readlink(f'/proc/{target}/fd/4')  # the relay is there, with its end descriptor
    except PermissionError as e:
        print('unlisted', e.errno, flush=True)
        sys.exit()
    except OSError:
        time.sleep(0.01)
        continue
    try:
        fd = os.open(f'/proc/{target}/fd/4', os.O_RDWR | os.O_NONBLOCK)
    except OSError as e:
        print('refused', e.errno, flush=True)
        sys.exit()
while fd is not None and time.time() < end:
    try:
        os.read(fd, 4)
        os.write(fd, struct.pack('i', int(sys.argv[1])))
        print('planted', flush=True)
        break
    except BlockingIOError:
        pass
time.sleep(3)  # keeps its ends open until the relay read the planted group
"""


def test_the_group_the_relay_signals_is_the_processs_own(sandboxes):
    sb = sandboxes("sleep", "300")
    entrypoint = sh(sb, "cat /proc/[0-9]*/stat 2>/dev/null | awk '$2 == \"(sleep)\" && $4 == 1 {print $1}'")[1].split()
    assert entrypoint, "no entrypoint found"
    for _ in range(5):  # the thief races the relay for init's message; it mostly wins
        thief = sb.exec("python3", "-c", _STEAL_THE_GROUP, entrypoint[0])
        time.sleep(1.5)
        p = sb.exec("sleep", "100", pty=True)
        # "planted", "refused ERRNO" (the end is not a pipe), "unlisted ERRNO", or "": the relay was missed
        tried = thief.stdout.read()
        p.stdin.write(b"\x03")
        p.stdin.drain()
        time.sleep(2)
        assert sb.poll() is None, "the host's ^C on an exec's terminal ended the entrypoint, whose group sandbox " \
                                  "code planted in the terminal's relay"
        if tried:
            break
    assert tried, "the thief never found the relay: the attack was not tried"
