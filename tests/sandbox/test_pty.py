"""exec(pty=True): a real terminal inside the sandbox."""

import re

import pytest

pytestmark = pytest.mark.rootless


@pytest.mark.gvisor
def test_pty_merges_output_and_is_a_terminal(sb):
    p = sb.exec("sh", "-c", "test -t 0 && test -t 1 && echo terminal; stty size; echo err >&2", pty=True)
    assert p.stdout.read() == "terminal\r\n24 80\r\nerr\r\n"
    assert p.stderr.read() == ""
    assert p.wait() == 0


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


@pytest.mark.gvisor
def test_pty_window_size(sb):
    p = sb.exec("sh", "-c", "sleep 0.3; stty size", pty=True)
    p._resize(50, 132)
    assert p.stdout.read().strip() == "50 132"


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


@pytest.mark.gvisor
def test_entrypoint_pty_ctrl_c(sandboxes):
    sb = sandboxes("sh", "-c", "sleep 30; echo survived", pty=True)
    assert sb.exec("sh", "-c", "until grep -qx sleep /proc/[0-9]*/comm; do sleep 0.01; done").wait() == 0
    sb.stdin.write(b"\x03")
    sb.stdin.drain()
    assert sb.wait(raise_on_termination=False) is None and sb.returncode == 130
    assert "survived" not in sb.stdout.read()
