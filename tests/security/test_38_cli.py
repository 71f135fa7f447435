"""`pysandbox logs` shows what a sandbox wrote: terminal escape sequences and floods (issue 17).

What docker does: `docker logs` passes the container's bytes through, to a terminal too.
pysandbox passes them through to a pipe or a file (byte for byte, as docker), but on a terminal
it shows control characters escaped (`\\x1b`), unless --raw: output a sandbox controls must not
retitle, clear or reprogram the user's terminal. The supervisor log of a failed sandbox (init
inside writes it too) is always escaped and read bounded (PYSANDBOX_CLI_LOG_MAX). A flood is
copied in pieces: `logs` holds at most a line's bound (64 KiB) of it, whatever its length.
"""

import os
import pty
import select
import subprocess
import sys

import pytest

import pysandbox as modal
from pysandbox._state import paths

pytestmark = pytest.mark.rootless

# Set the title (OSC 0), clear the screen, full reset, move the cursor, C1 CSI (U+009B), a raw 0x9b byte.
HOSTILE = b"\x1b]0;pwned\x07\x1b[2J\x1bc\x1b[10;10H\xc2\x9b31m\x9bend\n"
CONTROL = [bytes([c]) for c in range(32) if c not in (9, 10, 13)] + [b"\x7f", b"\xc2\x9b", b"\x9b"]


def logs(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "pysandbox", "logs", *args], capture_output=True, timeout=120,
                          env=os.environ, stdin=subprocess.DEVNULL, **kwargs)


def logs_on_a_terminal(*args):
    """What `pysandbox logs ARGS` writes to a terminal (stdout and stderr both on it)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pysandbox", "logs", *args], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=os.environ)
    os.close(slave)
    seen = b""
    try:
        while True:
            if select.select([master], [], [], 1)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                if not data:
                    break
                seen += data
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=60) == 0, seen
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return seen


def assert_no_control(text: bytes):
    for control in CONTROL:
        assert control not in text, (control, text[:400])


def test_escape_sequences_reach_a_terminal_escaped_and_a_pipe_unchanged(sandboxes):
    sb = sandboxes("sh", "-c", "cat /dev/stdin; printf 'x\\033[2Jy\\n' >&2")
    sb.stdin.write(HOSTILE)
    sb.stdin.write_eof()
    sb.stdin.drain()
    sb.wait()
    piped = logs(sb.object_id)
    assert (piped.stdout, piped.stderr) == (HOSTILE, b"x\x1b[2Jy\n")  # docker's: the bytes, exactly
    shown = logs_on_a_terminal(sb.object_id)
    assert_no_control(shown.replace(b"\r\n", b"\n"))
    assert b"\\x1b]0;pwned\\x07" in shown and b"x\\x1b[2Jy" in shown and b"\\x9b" in shown
    assert b"\x1b]0;pwned" in logs_on_a_terminal("--raw", sb.object_id)  # asked for


def test_a_flood_on_one_line_passes_in_bounded_memory(sandboxes):
    """48 MiB without a newline: `logs` copies it all, holding no more than a piece of it."""
    flood = sandboxes("sh", "-c", "head -c 50331648 /dev/zero | tr '\\0' 'a'")
    small = sandboxes("echo", "small")
    flood.wait()
    small.wait()

    def peak_rss_kib(sandbox_id):
        measure = ("import resource, subprocess, sys\n"
                   "out = subprocess.run([sys.executable, '-m', 'pysandbox', 'logs', sys.argv[1]],"
                   " stdout=subprocess.PIPE).stdout\n"
                   "print(len(out), out.count(b'a'), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        r = subprocess.run([sys.executable, "-c", measure, sandbox_id], capture_output=True, timeout=300,
                           env=os.environ, check=True)
        return [int(word) for word in r.stdout.split()]

    size, count, flood_rss = peak_rss_kib(flood.object_id)
    assert size == count == 48 << 20
    _, _, small_rss = peak_rss_kib(small.object_id)
    assert flood_rss - small_rss < 16 << 10, f"logs grew by {(flood_rss - small_rss) >> 10} MiB on the flood"


@pytest.fixture
def failed_sandbox(app, tmp_path, monkeypatch):
    """A sandbox whose runner could not start, its supervisor.log then carrying what init inside
    could write there: escape sequences, then a flood, then a last line of escapes."""
    broken = tmp_path / "runner"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    with monkeypatch.context() as patch:
        for variable in ("PYSANDBOX_BWRAP", "PYSANDBOX_NSJAIL"):  # whichever runner this run uses
            patch.setenv(variable, str(broken))
        sb = modal.Sandbox.create("true", app=app)
        sb.wait(raise_on_termination=False)
    with open(paths.SandboxDir.of(sb.object_id).log, "ab") as log:
        log.write(HOSTILE * 1000 + b"z" * (8 << 20) + b"\n" + HOSTILE.rstrip(b"\n") * 3000 + b"\n")
    return sb


def test_a_failed_sandbox_s_supervisor_log_is_escaped_and_bounded(failed_sandbox, monkeypatch):
    sb = failed_sandbox
    bound = 4096
    monkeypatch.setenv("PYSANDBOX_CLI_LOG_MAX", str(bound))
    r = logs(sb.object_id)
    assert r.returncode == 0
    assert_no_control(r.stderr.replace(b"\n", b"").replace(b"\t", b""))
    header, note, *rest = r.stderr.decode().splitlines()
    assert header == f"pysandbox: supervisor log of {sb.object_id} (failed):"
    assert note.startswith(f"[the last {bound} bytes of ") and "PYSANDBOX_CLI_LOG_MAX" in note
    assert len(r.stderr) < 4 * bound + 1024  # an escaped byte shows as at most 4
    assert rest[-1].endswith("end")


def test_an_error_quoting_the_supervisor_log_is_one_escaped_bounded_line(failed_sandbox):
    """exec on a sandbox that failed to start says why with a line of its log (records.failure_cause):
    shown escaped and cut (by the library at records.LOG_LINE_MAX, by the CLI at 2,000 characters)."""
    r = subprocess.run([sys.executable, "-m", "pysandbox", "exec", failed_sandbox.object_id, "--", "true"],
                       capture_output=True, timeout=60, env=os.environ, stdin=subprocess.DEVNULL)
    assert r.returncode == 125
    (line,) = r.stderr.splitlines()
    assert line.startswith(b"pysandbox: error: Sandbox ") and b"failed to start" in line
    assert_no_control(line)
    assert b"\\x1b]0;pwned" in line and len(line) < 2200
