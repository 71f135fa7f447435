"""Item 13: no terminal input injection (TIOCSTI, TIOCLINUX), and no way to
the caller's terminal: every sandbox process starts in a session of its own."""

import pytest

from ._inside import PRELUDE, py

pytestmark = pytest.mark.rootless

TIOCSTI, TIOCLINUX, TIOCGWINSZ = 0x5412, 0x541C, 0x5413

INJECT = f"""
def ioctl(request, arg):
    buf = ctypes.create_string_buffer(arg, 8)
    return call("ioctl", 0, request, buf)
# The kernel reads only the low 32 bits of the request: so must the filter.
results = [ioctl(r, b"x") for r in ({TIOCSTI}, {TIOCSTI} | (1 << 32), {TIOCLINUX}, {TIOCLINUX} | (0xdead << 32))]
print(results, ioctl({TIOCGWINSZ}, b""), os.isatty(0))
"""


def test_tiocsti_refused_on_the_sandbox_terminal(sb):
    p = sb.exec("python3", "-c", PRELUDE + INJECT, pty=True)
    out = p.stdout.read()
    assert p.wait() == 0, out
    assert "['EPERM', 'EPERM', 'EPERM', 'EPERM'] 0 True" in out


def test_new_session_and_no_controlling_terminal(sb):
    code, out = py(sb, """
        try:
            os.open("/dev/tty", os.O_RDWR)
            tty = "opened"
        except OSError as e:
            tty = errno.errorcode[e.errno]
        print(os.getsid(0) == os.getpid(), tty)
    """)
    assert (code, out) == (0, "True ENXIO\n")
