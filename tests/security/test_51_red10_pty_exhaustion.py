"""Red team, session 10: exec(pty=True) now takes its terminal from the sandbox's own devpts under every runner
(init_exec.c terminal(), the host-terminal path is gone).

Fixed: every sandbox's devpts holds at most PYSANDBOX_PTYS_MAX terminals (nsjail mounts it with max=, init
remounts bwrap's: runtime/ptys.py), and a sandbox that used its own up gets a ResourceExhaustedError naming it.
The finding, before that: the kernel caps the terminals of all devpts instances but the host's together (kernel.pty.max less
kernel.pty.reserve: 3072 by default), and bwrap's and nsjail's devpts (newinstance, no max=) set no bound of
their own. Sandbox code that opens /dev/ptmx until ENOSPC so takes every terminal from every other sandbox on the
host, another user's too: their exec(pty=True) then fails, with a bare AgentError ("allocating a terminal",
not a pysandbox.exception), where the host terminal of before came from the host's reserve. gVisor's devpts is
its own: not affected.
"""

import errno

import pytest

from pysandbox import bounds
from pysandbox.exception import Error, ResourceExhaustedError

pytestmark = pytest.mark.rootless

# Opens /dev/ptmx (1000 per process, under RLIMIT_NOFILE) until the kernel says no more; prints how many it
# holds and the errno it stopped on, then holds them until its stdin closes.
_HOG = r"""
import os, sys
held, err = 0, 0
while not err:
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        fds, err = [], 0
        while len(fds) < 1000:
            try:
                fds.append(os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY))
            except OSError as e:
                err = e.errno
                break
        os.write(w, f"{len(fds)} {err}".encode())
        os.close(w)
        sys.stdin.read()
        os._exit(0)
    os.close(w)
    n, err = map(int, os.read(r, 100).split())
    held += n
print('held', held, err, flush=True)
sys.stdin.read()
"""


def _first_line(process) -> str:
    """The first line of a process's stdout, however its chunks arrive."""
    text = ""
    for chunk in process.stdout:
        text += chunk
        if "\n" in text:
            break
    return text.partition("\n")[0]


def test_one_sandbox_cannot_take_every_other_sandboxs_terminals(sandboxes, monkeypatch):
    monkeypatch.delenv(bounds.variable("ptys"), raising=False)  # the default protects
    hostile, other = sandboxes("sleep", "300"), sandboxes("sleep", "300")
    hog = hostile.exec("python3", "-c", _HOG)
    try:
        report = _first_line(hog).split()
        # The attack was made: it held terminals until its devpts, or the kernel, refused another.
        assert report[0] == "held" and int(report[1]) > 0 and int(report[2]) in (errno.ENOSPC, errno.EIO), report
        # Its devpts refused it, not the host's pool: it holds its bound, the whole of it.
        assert int(report[1]) == bounds.get("ptys") and int(report[2]) == errno.ENOSPC, report
        # The hog itself: a clear error naming the bound.
        with pytest.raises(ResourceExhaustedError, match=bounds.variable("ptys")):
            hostile.exec("tty", pty=True)
        try:
            p = other.exec("tty", pty=True)
        except Exception as exc:  # noqa: BLE001 - which class it is, is part of the finding
            assert isinstance(exc, Error), f"a bare {type(exc).__name__}: {exc}"
            pytest.fail(f"another sandbox's exec(pty=True) failed: {exc}")
        assert p.stdout.read().startswith("/dev/pts/") and p.wait() == 0
    finally:
        hog.stdin.write_eof()
        hog.stdin.drain()
        hog.wait()


# CAP_SYS_ADMIN's bit: bwrap gives it to init alone, for the remount of /dev/pts with max=.
_SYS_ADMIN = 1 << 21


def test_init_holds_no_cap_sys_admin_once_sandbox_code_runs(sb):
    """Init's sets, as sandbox code sees them, are the sandbox's own: the remount's CAP_SYS_ADMIN is gone."""
    status = sb.exec("sh", "-c", "grep ^Cap /proc/1/status; echo; grep ^Cap /proc/self/status").stdout.read()
    init, own = (dict(line.split(":\t") for line in part.splitlines()) for part in status.strip().split("\n\n"))
    assert init["CapPrm"] == init["CapEff"] == init["CapBnd"] == own["CapBnd"], status
    assert not int(init["CapBnd"], 16) & _SYS_ADMIN and init["CapInh"] == init["CapAmb"] == "0" * 16, status


# Sandbox root remounts its /dev/pts with a larger max=, or mounts a devpts of its own over it, then opens
# /dev/ptmx until refused: prints the two errnos and how many terminals it got.
_RAISE_BOUND = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT = 32
def mount(source, fstype, flags):
    ok = libc.mount(source, b"/dev/pts", fstype, flags, b"newinstance,ptmxmode=0666,mode=620,max=1000") == 0
    return 0 if ok else ctypes.get_errno()
errs = [mount(None, None, MS_REMOUNT), mount(b"devpts", b"devpts", 0)]
fds = []
try:
    while len(fds) < 1000:
        fds.append(os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY))
except OSError:
    pass
print(*errs, len(fds))
"""


def test_sandbox_root_cannot_raise_its_devpts_bound(sandboxes, monkeypatch):
    """The bound init's remount (or nsjail's mount) set is the sandbox's for good: no mount of its own undoes it."""
    monkeypatch.setenv(bounds.variable("ptys"), "5")
    sb = sandboxes("sleep", "300")
    remount, mount, held = map(int, sb.exec("python3", "-c", _RAISE_BOUND).stdout.read().split())
    assert remount != 0 and mount != 0, (remount, mount)
    assert held == 5
