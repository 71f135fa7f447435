"""Red team (red14): `exec(..., stdout=StreamType.STDOUT)` (Modal: the output is printed to the caller's stdout)
handed the caller's own stdout descriptor into the sandbox (a dup of fd 1, passed with SCM_RIGHTS as the
process's fd 1). Sandbox code then holds a host descriptor, for as long as it likes (a process it leaves behind
keeps it after the exec and the caller's program have ended):

* on a terminal (`python job.py` run by a user; the descriptor is the terminal's, open read-write): it reads what
  the user types next at their shell, a password included, and turns the terminal's echo off so they do not see
  it (reproduced: "my-sudo-password" typed after the program exited reached the sandbox's /tmp/keys);
* on a file (`python job.py > run.log`): it truncates it or overwrites what the caller wrote before (pwrite), and
  fstat tells it the host file's inode, owner and size.

Severity: high (sandbox code reads host input outside what it was given and changes host state: docs/SECURITY.md
"Who is trusted"), for any caller that uses StreamType.STDOUT from a terminal or with its stdout redirected.

Fix: StreamType.STDOUT is a pipe like PIPE: the process writes into it and a thread of the caller's copies it to
the caller's stdout (io_streams.LocalStdout); ContainerProcess copies what is left when the process ends, so its
output is there before wait() returns, as before. The sandbox never holds a host descriptor but that pipe's end."""

import os
import pty
import subprocess
import sys
import termios
import time

import pytest

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

# Sandbox code given the caller's stdout: says what it got, then leaves a process behind that turns the terminal's
# echo off and copies what is typed into /tmp/keys, or truncates the file.
ATTACK = r"""
import os, sys, termios
print("tty" if os.isatty(1) else "not-a-tty", flush=True)
try:
    os.ftruncate(1, 0)
except OSError:
    pass
if os.fork():
    sys.exit(0)
os.setsid()
try:
    a = termios.tcgetattr(1)
    a[3] &= ~termios.ECHO
    termios.tcsetattr(1, termios.TCSANOW, a)
except termios.error:
    pass
with open("/tmp/keys", "wb") as f:
    while True:
        try:
            d = os.read(1, 100)
        except OSError:
            break
        if not d:
            break
        f.write(d)
        f.flush()
"""

CALLER = """
import sys, pysandbox as modal
sb = modal.Sandbox.from_id(sys.argv[1])
print("before the exec", flush=True)
assert sb.exec("python3", "-c", sys.argv[2], stdout=modal.StreamType.STDOUT).wait() == 0
print("after the exec", flush=True)
"""


def run_caller(sb, stdout) -> None:
    subprocess.run([sys.executable, "-c", CALLER, sb.object_id, ATTACK], stdin=subprocess.DEVNULL, stdout=stdout,
                   stderr=subprocess.PIPE, env=os.environ, timeout=120, check=True)


def test_a_terminal_on_the_callers_stdout_is_never_the_sandboxs(sb):
    master, slave = pty.openpty()
    try:
        run_caller(sb, slave)
        time.sleep(0.5)  # the process the sandbox left behind, at work
        said = os.read(master, 65536)
        assert said.split() == [b"before", b"the", b"exec", b"not-a-tty", b"after", b"the", b"exec"], said
        assert termios.tcgetattr(slave)[3] & termios.ECHO, "sandbox code turned the caller's terminal's echo off"
        os.write(master, b"my-sudo-password\n")  # the user types at their shell, the program gone
        time.sleep(0.5)
        assert sb.exec("sh", "-c", "cat /tmp/keys 2>/dev/null").stdout.read() == ""
    finally:
        os.close(master)
        os.close(slave)


def test_a_file_on_the_callers_stdout_is_never_the_sandboxs(sb, tmp_path):
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        out.write(b"the caller's earlier output\n")
        out.flush()
        run_caller(sb, out)
    assert log.read_bytes() == b"the caller's earlier output\nbefore the exec\nnot-a-tty\nafter the exec\n"
