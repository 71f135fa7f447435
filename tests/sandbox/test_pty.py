"""exec(pty=True) and create(pty=True): a real terminal inside the sandbox, from its own devpts."""

import errno
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import pytest

import pysandbox as modal
from pysandbox import ptypool, settings
from pysandbox.exception import InvalidError, ResourceExhaustedError

pytestmark = pytest.mark.rootless


@pytest.mark.gvisor
def test_pty_merges_output_and_is_a_terminal(sb):
    p = sb.exec("sh", "-c", "test -t 0 && test -t 1 && echo terminal; stty size; echo err >&2", pty=True)
    assert p.stdout.read() == "terminal\r\n24 80\r\nerr\r\n"
    assert p.stderr.read() == ""
    assert p.wait() == 0


# The process names its terminal (tty, ttyname), as on Modal: one of the sandbox's devpts, not a host's
# terminal its /dev/pts does not show ("not a tty", ENODEV).
NAMES = "tty; python3 -c 'import os; print(os.ttyname(0), os.ttyname(1), os.ttyname(2))'"


@pytest.mark.gvisor
def test_pty_exec_names_its_terminal(sb):
    p = sb.exec("sh", "-c", NAMES, pty=True)
    out = p.stdout.read()
    assert p.wait() == 0, out
    assert re.fullmatch(r"(/dev/pts/\d+)\r\n\1 \1 \1\r\n", out), out


@pytest.mark.gvisor
def test_pty_entrypoint_names_its_terminal(sandboxes):
    sb = sandboxes("sh", "-c", NAMES, pty=True)
    sb.wait()
    out = sb.stdout.read()
    assert sb.returncode == 0, out
    assert re.fullmatch(r"(/dev/pts/\d+)\r\n\1 \1 \1\r\n", out), out


@pytest.mark.gvisor
def test_pty_input_echo_and_controlling_terminal(sb):
    # The terminal's foreground group is readable from it only where it is the controlling terminal (ENOTTY
    # elsewhere); gVisor's /proc/<pid>/stat has no tty_nr to show it.
    ctty = "import os; os.tcgetpgrp(0) == os.getpgrp() == os.getsid(0) and print('ctty')"
    p = sb.exec("bash", "-c", f"read -p 'name? ' n; echo hi $n; python3 -c \"{ctty}\"", pty=True)
    p.stdin.write("bob\n")
    p.stdin.drain()
    out = p.stdout.read()
    assert "name? " in out and "hi bob\r\n" in out and "ctty" in out
    assert p.wait() == 0


@pytest.mark.gvisor
def test_pty_ctrl_c_interrupts_the_foreground_process(sb):
    p = sb.exec("sh", "-c", "sleep 30; echo survived", pty=True)
    # Once sleep runs: a ^C between sh's fork and the child's exec is lost to the shell's own
    # signal handling (as on any terminal), and the test would wait out the sleep.
    assert sb.exec("sh", "-c", "until grep -qx sleep /proc/[0-9]*/comm; do sleep 0.01; done").wait() == 0
    p.stdin.write(b"\x03")
    p.stdin.drain()
    assert p.wait() == 130
    assert "survived" not in p.stdout.read()


# A job that says whether ^C reached it, once its handler is in place.
_JOB = ("import pathlib, time\npathlib.Path('/tmp/job-ready').touch()\ntry:\n    time.sleep(30)\n"
        "except KeyboardInterrupt:\n    print('job interrupted')")


@pytest.mark.gvisor
def test_pty_ctrl_c_interrupts_a_job_control_shells_foreground_job(sb):
    # An interactive shell runs its job in a process group of its own, the terminal's foreground one: ^C goes to
    # that group, not to the shell's (which ignores SIGINT and goes on). Under gVisor, whose line discipline sends
    # no signal, the relay hands the key to the terminal's witness, which signals that group (init_handoff.h).
    p = sb.exec("bash", "--norc", "-i", "-c", f'python3 -c "{_JOB}"; echo shell went on', pty=True)
    assert sb.exec("sh", "-c", "until [ -e /tmp/job-ready ]; do sleep 0.01; done").wait() == 0
    p.stdin.write(b"\x03")
    p.stdin.drain()
    out = p.stdout.read()
    assert "job interrupted\r\n" in out and "shell went on\r\n" in out, out
    assert p.wait() == 0


@pytest.mark.gvisor
def test_pty_exec_takes_the_next_file_on_path(sb):
    # Files of PATH that fail to exec (a script whose interpreter is missing, a file that is not executable) make
    # init try the next, as execvp does, in the child that took the terminal: under gVisor a second child could
    # not (a terminal keeps its first session for good there: TIOCSCTTY fails with EPERM).
    assert sb.exec("sh", "-c", "mkdir /tmp/bad /tmp/plain && printf '#!/nonexistent\\n' > /tmp/bad/sh && "
                   "chmod +x /tmp/bad/sh && touch /tmp/plain/sh").wait() == 0
    p = sb.exec("sh", "-c", "echo ran", pty=True, env={"PATH": "/tmp/plain:/tmp/bad:/usr/bin:/bin"})
    assert p.stdout.read() == "ran\r\n" and p.wait() == 0


@pytest.mark.gvisor
@pytest.mark.parametrize("content, code, error", [("#!/nonexistent\\n", 127, "No such file or directory"),
                                                  ("not a program\\n", 126, "Exec format error")])
def test_pty_exec_reports_the_last_file_on_paths_failure(sb, content, code, error):
    # Nothing on PATH runs: the error is the one execvp would give, and the shell's exit code for it.
    assert sb.exec("sh", "-c", f"mkdir -p /tmp/only && printf '{content}' > /tmp/only/tool && "
                   "chmod +x /tmp/only/tool && touch /tmp/only/plain").wait() == 0
    p = sb.exec("tool", pty=True, env={"PATH": "/tmp/only"})
    assert p.wait() == code
    assert f"pysandbox: exec: tool: {error}" in p.stdout.read()
    p = sb.exec("plain", pty=True, env={"PATH": "/tmp/none:/tmp/only"})
    assert p.wait() == 126
    assert "pysandbox: exec: plain: Permission denied" in p.stdout.read()


@pytest.mark.gvisor
def test_pty_window_size(sb):
    p = sb.exec("sh", "-c", "sleep 0.3; stty size", pty=True)
    p._resize(50, 132)
    assert p.stdout.read().strip() == "50 132"


@pytest.mark.gvisor
def test_a_dropped_pty_exec_hangs_up_its_process(sb):
    # Letting go of the handle (and so of the output's read end) hangs the terminal up, as closing a terminal's
    # master does: a silent process that waits for input does not linger.
    p = sb.exec("cat", pty=True)
    assert sb.exec("sh", "-c", "until pgrep -x cat >/dev/null; do sleep 0.01; done").wait() == 0
    del p
    assert sb.exec("sh", "-c", "while pgrep -x cat >/dev/null; do sleep 0.05; done", timeout=60).wait() == 0


@pytest.mark.gvisor
def test_a_dropped_pty_exec_closes_its_window_socket(sb):
    """As the module says of every handle: dropping it closes what it owns at once, the terminal's window
    socket too (it was left to the garbage collector, with a ResourceWarning)."""
    p = sb.exec("true", pty=True)
    window = p._window
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del p
    assert window.fileno() == -1


@pytest.mark.gvisor
def test_pty_failed_command(sb):
    p = sb.exec("no-such-command", pty=True)
    assert p.wait() == 127
    assert "no-such-command" in p.stdout.read()


@pytest.mark.gvisor
def test_entrypoint_under_a_pty(sandboxes):
    sb = sandboxes("bash", "-c", "tty; stty size; echo err >&2; read -p 'name? ' n; echo hi $n", pty=True)
    sb.stdin.write("bob\n")
    sb.stdin.drain()
    out = sb.stdout.read()
    # The terminal echoes "bob" whenever it arrives: before, between or after the program's lines.
    assert out.replace("hi bob", "").count("bob\r\n") == 1
    lines = re.sub(r"(?<!hi )bob\r\n", "", out)
    assert "/dev/pts/" in lines and "24 80\r\nerr\r\n" in lines and "name? " in lines and "hi bob\r\n" in lines
    assert sb.stderr.read() == ""
    sb.wait()
    assert sb.returncode == 0


def test_entrypoint_pty_end_of_input(sandboxes):
    for _ in range(10):  # once raced with the terminal's hang-up (cat died of SIGHUP)
        sb = sandboxes("cat", pty=True)
        sb.stdin.write("x\n")
        sb.stdin.write_eof()
        sb.stdin.drain()
        assert sb.stdout.read() == "x\r\nx\r\n"  # the terminal's echo, then cat's copy
        sb.wait()
        assert sb.returncode == 0


@pytest.mark.gvisor(only=True)
def test_entrypoint_pty_end_of_input_is_refused_under_gvisor(sandboxes):
    # This gVisor's terminal has no end of input (docs/RUNNERS.md): write_eof says so, and leaves stdin open.
    sb = sandboxes("python3", "-c", "import sys; print(sys.stdin.readline().strip() * 2)", pty=True)
    sb.stdin.write_eof()
    with pytest.raises(InvalidError, match=r"write_eof\(\) cannot end .* pty=True sandbox under the gVisor runner"):
        sb.stdin.drain()
    assert sb.poll() is None
    # A new writer (the refused one is closed on this side); writing before the refusal too would race it: each
    # writer has a relay of its own into the terminal.
    again = modal.Sandbox.from_id(sb.object_id).stdin
    again.write("xy\n")
    again.drain()
    assert sb.wait(raise_on_termination=False) is None and sb.returncode == 0
    assert sb.stdout.read() == "xy\r\nxyxy\r\n"


@pytest.mark.gvisor
def test_entrypoint_pty_ctrl_c(sandboxes):
    sb = sandboxes("sh", "-c", "sleep 30; echo survived", pty=True)
    assert sb.exec("sh", "-c", "until grep -qx sleep /proc/[0-9]*/comm; do sleep 0.01; done").wait() == 0
    sb.stdin.write(b"\x03")
    sb.stdin.drain()
    assert sb.wait(raise_on_termination=False) is None and sb.returncode == 130
    assert "survived" not in sb.stdout.read()


# Opens /dev/ptmx until refused; prints how many it held and the errno, holds them until its stdin closes.
_HOLD = """
import os, sys
fds, err = [], 0
while not err:
    try:
        fds.append(os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY))
    except OSError as e:
        err = e.errno
print(len(fds), err, flush=True)
sys.stdin.read()
"""


def test_a_sandboxs_devpts_holds_at_most_ptys_max(sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_PTYS_MAX", "5")
    sb = sandboxes("sleep", "300")
    monkeypatch.setenv("PYSANDBOX_PTYS_MAX", "7")  # the caller's setting now: the error names the sandbox's own
    mountinfo = sb.exec("grep", " /dev/pts ", "/proc/self/mountinfo").stdout.read()
    assert re.search(r" - devpts \S+ \S*\bmax=5\b", mountinfo), mountinfo
    pty = sb.exec("sleep", "300", pty=True)  # one of the five
    hold = sb.exec("python3", "-c", _HOLD)
    try:
        line = ""
        for chunk in hold.stdout:
            line += chunk
            if "\n" in line:
                break
        assert line.split() == ["4", str(errno.ENOSPC)], line
        with pytest.raises(ResourceExhaustedError, match=r"at most 5 at once \(PYSANDBOX_PTYS_MAX when it was"):
            sb.exec("tty", pty=True)
    finally:
        hold.stdin.write_eof()
        hold.stdin.drain()
        assert hold.wait() == 0
    p = sb.exec("tty", pty=True)  # the four are free again
    assert p.stdout.read().startswith("/dev/pts/") and p.wait() == 0
    assert pty.poll() is None


@pytest.mark.gvisor  # which does not use it: a bad setting is an error under every runner all the same
@pytest.mark.parametrize("value", ["0", "1048577", "lots", "past the pool"])
def test_a_bad_ptys_max_is_refused_before_anything_starts(app, monkeypatch, value):
    pool = ptypool.host_pool()
    if value == "past the pool":  # a bound that would bound nothing
        value, message = str(pool + 1), f"=\\d+ is more terminals than this host's pool holds: {pool}"
    else:
        message = "PYSANDBOX_PTYS_MAX"
    monkeypatch.setenv("PYSANDBOX_PTYS_MAX", value)
    before = list(modal.Sandbox.list(app_id=app.app_id))
    with pytest.raises(InvalidError, match=message):
        modal.Sandbox.create("true", app=app)
    assert list(modal.Sandbox.list(app_id=app.app_id)) == before


@pytest.mark.gvisor
def test_a_ptys_max_of_the_whole_pool_is_taken(sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_PTYS_MAX", str(ptypool.host_pool()))
    sb = sandboxes("true")
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 0


@pytest.fixture
def used_up_pool(tmp_path, monkeypatch):
    """The host's pool as ptys reads it, every terminal in use: faked, as a test must not take the real one from
    everything else on the host."""
    for name in ("max", "reserve"):
        (tmp_path / name).write_text((ptypool.KERNEL_PTY / name).read_text())
    (tmp_path / "nr").write_text(str(ptypool.host_pool()))
    monkeypatch.setattr(ptypool, "KERNEL_PTY", tmp_path)


def test_create_pty_with_no_terminal_left_on_the_host_is_refused_before_any_work(app, used_up_pool):
    before = list(modal.Sandbox.list(app_id=app.app_id))
    with pytest.raises(ResourceExhaustedError, match=r"create\(pty=True\) cannot give the entrypoint a terminal: "
                                                     r"the host's terminals are all in use .*kernel.pty.max"):
        modal.Sandbox.create("cat", app=app, pty=True)
    assert list(modal.Sandbox.list(app_id=app.app_id)) == before


def test_exec_pty_with_no_terminal_left_on_the_host_names_the_pool(sandboxes, monkeypatch, request):
    monkeypatch.setenv("PYSANDBOX_PTYS_MAX", "1")
    sb = sandboxes("sleep", "300")
    held = sb.exec("sleep", "300", pty=True)  # its one terminal: init's next allocation fails (ENOSPC)
    # The host's pool used up as well (the kernel's ENOSPC does not say which): the pool, shared, is named first.
    request.getfixturevalue("used_up_pool")
    with pytest.raises(ResourceExhaustedError, match="the host's terminals are all in use"):
        sb.exec("tty", pty=True)
    assert held.poll() is None


# The runner, started under a seccomp filter (inherited by init) that fails unlockpt's ioctl with ENOSPC: init's
# allocation of the entrypoint's terminal fails as it does when the host's pool runs out after create's check,
# which a test must not make happen to everything else on the host. The host alone sets the runner's binary.
# (The system's python: the runner runs as sandbox root, which may not reach the caller's.)
_NO_TERMINAL_RUNNER = """#!/usr/bin/python3
import ctypes, os, struct, sys
def op(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
program = b"".join([
    op(0x20, 0),  # the syscall's number
    op(0x15, {{"x86_64": 16, "aarch64": 29}}[os.uname().machine], jf=3),  # ioctl, else allowed
    op(0x20, 24),  # its request
    op(0x15, 0x40045431, jf=1),  # TIOCSPTLCK
    op(0x06, 0x50000 | {enospc}),  # SECCOMP_RET_ERRNO
    op(0x06, 0x7FFF0000),  # SECCOMP_RET_ALLOW
])
class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(Program(len(program) // 8, program)), 0, 0):
    sys.exit(f"seccomp: {{os.strerror(ctypes.get_errno())}}")
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""


def _copy_runner(real: Path, to: Path) -> Path:
    """The runner and the libraries its wheel holds beside it (found through $ORIGIN), in `to` as in the wheel:
    where sandbox root, which runs it, reaches it."""
    base = real.parents[2]
    found = subprocess.run(["ldd", str(real)], capture_output=True, text=True, check=True).stdout.split()
    libs = {Path(os.path.normpath(word)).parent for word in found if word.startswith(str(base))}
    for directory in (d for d in libs if d.name.endswith(".libs")):  # auditwheel's, not the system's
        shutil.copytree(directory, to / directory.relative_to(base))
    (to / real.relative_to(base)).parent.mkdir(parents=True)
    return Path(shutil.copy(real, to / real.relative_to(base)))


@pytest.fixture
def no_terminal_runner(runner, monkeypatch):
    variable, real = {"bwrap": ("PYSANDBOX_BWRAP", settings.bwrap_binary()),
                      "nsjail": ("PYSANDBOX_NSJAIL", settings.nsjail_binary())}[runner]
    to = Path(tempfile.mkdtemp(prefix="pysandbox-test-runner-"))
    try:
        to.chmod(0o755)
        path = to / "runner"
        path.write_text(_NO_TERMINAL_RUNNER.format(enospc=errno.ENOSPC, real=str(_copy_runner(Path(real), to))))
        path.chmod(0o755)
        monkeypatch.setenv(variable, str(path))
        yield
    finally:
        shutil.rmtree(to)


def test_create_pty_whose_entrypoint_finds_no_terminal_is_resource_exhausted(sandboxes, no_terminal_runner):
    sb = sandboxes("cat", pty=True)
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 1
    # No pool used up here: the error names the sandbox's own bound, as exec(pty=True)'s does.
    with pytest.raises(ResourceExhaustedError, match=r"could not give its entrypoint a terminal \(sandbox-init: "
                                                     r"allocating a terminal: No space left on device\): no terminal "
                                                     r"left\. This sandbox's terminals are at most \d+ at once"):
        sb.exec("true")
