"""Item 43: the relays that stand in under gVisor for the descriptors it cannot hand out of a sandbox
(docs/RUNNERS.md): init holds a file the host opened (sb.open, sb.filesystem) on the host's connection
and serves reads and writes of it one chunk each (native/init/init_fs.c); processes of init's copy a
pipe the host sent in into the entrypoint's stdin (init_entry.c) and a watch's inotify events into a
socket the host sent in (init_fs.c). Sandbox code runs beside them.

* It cannot reach either through /proc/1/fd; gVisor's pidfd_getfd gives it what of init's is not the
  host's (the relayed file, not the host's connection): with it, it moves no offset the host reads at
  and forges no reply.
* It can swap the file under the host's handle, or end the stdin or a watch's relay: the host keeps its
  file (as with a descriptor), its writes to stdin end as they do when the entrypoint closes its stdin
  (the rest is dropped), the watch ends; nothing hangs, and init serves on.
* A sandbox that ends while the host holds a relayed file: the next write is a BrokenPipeError.
"""

import json
import threading

import pytest

from ._inside import py_ok, sh

pytestmark = pytest.mark.gvisor(only=True)  # the relays are the gvisor runner's


def test_what_sandbox_code_takes_from_init_moves_no_relay(sandboxes):
    """gVisor lets it open init's /proc/1/fd entries (it does not enforce init's non-dumpable flag), the
    relayed file among them, but no host socket: whatever it takes through them or pidfd_getfd, it moves
    no offset the host reads at (init keeps the host's offset and reads and writes at it) and forges no
    reply on the host's connection."""
    sb = sandboxes("sleep", "300")
    sh(sb, "printf 0123456789 > /tmp/f")
    with sb.open("/tmp/f", "rb") as f:
        assert f.read(3) == b"012"
        out = py_ok(sb, """
            import json, socket
            forged = bytes.fromhex("50534231" "0100" "6400" "0e000000") + b"xx"  # an OK reply carrying b"xx"
            taken = []
            for fd in range(64):
                try:
                    opened = os.open(f"/proc/1/fd/{fd}", os.O_RDONLY)
                except OSError:
                    opened = None
                pidfd = call("pidfd_open", 1, 0)
                for stolen in (opened, call("pidfd_getfd", pidfd, fd, 0) if isinstance(pidfd, int) else None):
                    if not isinstance(stolen, int):
                        continue
                    taken.append(fd)
                    for attack in (lambda: os.lseek(stolen, 0, os.SEEK_SET),
                                   lambda: socket.socket(fileno=stolen).send(forged)):
                        try:
                            attack()
                        except OSError:
                            pass
            print(json.dumps(taken))
        """)
        assert json.loads(out.splitlines()[-1]), out  # the attack reached init's descriptors: it was tried
        assert f.read(3) == b"345"  # not the file's start, nor the forged b"xx"
        f.seek(-2, 2)
        assert f.read() == b"89"


def test_a_file_swapped_under_the_host_stays_the_hosts(sandboxes):
    sb = sandboxes("sleep", "300")
    sh(sb, "echo original > /tmp/f")
    with sb.open("/tmp/f") as f:
        assert sh(sb, "rm /tmp/f && mkfifo /tmp/f")[0] == 0  # a FIFO now, which would block a reader
        assert f.read() == "original\n"  # init holds the file it opened, as a descriptor would
    with pytest.raises(OSError, match="not a regular file"):
        sb.open("/tmp/f")


def test_ending_the_stdin_relay_stalls_nothing(sandboxes):
    sb = sandboxes("sleep", "300")  # never reads its stdin
    sb.stdin.write(b"x" * (4 << 20))  # more than a pipe and the relay hold: drain waits for a reader
    drained = threading.Event()
    threading.Thread(target=lambda: (sb.stdin.drain(), drained.set()), daemon=True).start()
    # Sandbox code ends the relay, a process of init's (the host's writes then fail with EPIPE, and drain
    # drops the rest, as when an entrypoint closes its stdin).
    code, out = sh(sb, "for i in $(seq 300); do for p in /proc/[0-9]*; do n=${p#/proc/}; [ $n != 1 ] && "
                       "[ \"$(head -c 17 $p/cmdline)\" = /__pysandbox/init ] && kill -9 $n && echo killed && exit; done; "
                       "sleep 0.1; done")  # once the drain has started it
    assert "killed" in out, out
    assert drained.wait(60), "drain still waits for a relay that sandbox code ended"
    assert sh(sb, "echo serving") == (0, "serving\n")


def test_ending_a_watch_relay_ends_the_watch(sandboxes):
    sb = sandboxes("sleep", "300")
    seen = []
    watching = threading.Thread(target=lambda: seen.extend(sb.watch("/tmp", timeout=300)), daemon=True)
    watching.start()
    code, out = sh(sb, "for i in $(seq 300); do for p in /proc/[0-9]*; do n=${p#/proc/}; [ $n != 1 ] && "
                       "[ \"$(head -c 17 $p/cmdline)\" = /__pysandbox/init ] && kill -9 $n && echo killed && exit; done; "
                       "sleep 0.1; done")  # the watch's relay, once it runs
    assert "killed" in out, out
    watching.join(60)
    assert not watching.is_alive(), "the watch still waits on a relay that sandbox code ended"
    assert sh(sb, "echo serving") == (0, "serving\n")


def test_a_relayed_file_of_an_ended_sandbox_says_so(sandboxes):
    sb = sandboxes("sleep", "300")
    f = sb.open("/tmp/f", "w+")
    sb.terminate()
    sb.wait(raise_on_termination=False)
    with pytest.raises(BrokenPipeError):  # as a write to a pipe whose reader is gone
        f.write("late")
    f.close()


def test_directories_made_under_a_recursive_watch_do_not_end_the_sandbox(sandboxes):
    """Red team finding (fixed by HANDOFF_RELAYS_MAX): each directory made under a recursive watch is watched again (watch.py's _add_quietly),
    and under gVisor every watch is a relay, a process of init's that lives as long as the host's socket. A
    few hundred new directories (a git clone, an npm install in a watched tree) are a few hundred processes
    whose ptrace stubs exhaust the pids limit, and the Sentry panics ("error initializing first thread"):
    the whole sandbox ends with status 2. Under bwrap and nsjail the same watch costs inotify descriptors,
    which the namespace's limit bounds, and the sandbox serves on."""
    sb = sandboxes("sleep", "300")
    seen = []

    def watch():
        try:
            for event in sb.watch("/tmp", recursive=True, timeout=60):
                seen.append(event)
        except Exception as exc:  # the sandbox ended under it
            seen.append(exc)

    threading.Thread(target=watch, daemon=True).start()
    assert sh(sb, "sleep 2")[0] == 0  # the watch is set up
    code, out = sh(sb, "cd /tmp && for i in $(seq 400); do mkdir d$i; done; echo made")
    assert (code, out) == (0, "made\n"), (code, out, sb.poll())
    assert sh(sb, "echo serving") == (0, "serving\n")
