"""A warm spare (native/supervisor/spare.h) takes exactly one well-formed claim, and its namespaces
belong to the sandbox identity.

The spare is a supervisor that waits, root for a root caller, with a user and a network namespace
made for the next sandbox. Whatever reaches its socket other than a whole claim (a command line of
NUL-ended words and six or seven descriptors) ends it before it starts anything; end of file ends it
quietly. The namespaces it made are owned by the sandbox identity (as the runner child makes them),
never by host root, so the sandbox's runner holds its capabilities there and nowhere else."""

import array
import fcntl
import os
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from pysandbox import identity, settings
from pysandbox.runtime import spare

pytestmark = pytest.mark.rootless

NS_GET_OWNER_UID = 0xB704  # linux/nsfs.h: _IO(0xb7, 0x4)


def identity_options():
    options = identity.current().supervisor_args()
    if os.geteuid() == 0:
        uid, gid = settings.sandbox_owner()
        options = ["--as-uid", str(uid), "--as-gid", str(gid), *options]
    return options


def start_spare(*extra):
    """A spare, its stderr a file (a pipe would wait for its namespaces' makers too, which inherit it)."""
    ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    supervisor = settings.native_binary("sandbox-supervisor")
    err = tempfile.TemporaryFile()
    process = subprocess.Popen([supervisor, "--spare", "--room", " " * 64, *identity_options(), *extra],
                               stdin=its, stderr=err, env=settings.HOST_ENV)
    process.said = err
    its.close()
    return process, ours


def wait_ready(process, timeout=30):
    """Until it holds its two namespaces (six descriptors: 0-2, its socket, the namespaces; six show up
    before that too, the network namespace's maker's socket beside the user namespace: red15)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kinds = set()
        for fd in os.listdir(f"/proc/{process.pid}/fd"):
            try:
                kinds.add(os.readlink(f"/proc/{process.pid}/fd/{fd}").split(":")[0])
            except FileNotFoundError:
                pass  # closed meanwhile
        if {"user", "net"} <= kinds:
            return
        time.sleep(0.01)


def finish(process, timeout=30):
    """Its exit status and what it said, once it exited."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    finally:
        process.said.seek(0)
        said = process.said.read().decode()
        process.said.close()
    return process.returncode, said


def claim(words, nfds):
    """A spare sent `words` with `nfds` descriptors: its exit status and what it said."""
    process, sock = start_spare()
    fds = [os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC) for _ in range(nfds)]
    try:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        sock.sendmsg([words], ancillary)
        return finish(process)
    finally:
        sock.close()
        for fd in fds:
            os.close(fd)


@pytest.mark.parametrize("words, nfds", [
    (b"/bin/true\0--dir", 6),  # the last word not NUL-ended
    (b"/bin/true\0", 2),  # too few descriptors
    (b"/bin/true\0", 0),
    (b"/bin/true\0", 8),  # one too many: the control buffer has room for it, the check not
    (b"/bin/true\0", 9),  # more than the control buffer holds: cut short
    (b"x" * (spare.CLAIM_MAX + 1) + b"\0", 6),  # longer than a claim may be: cut short
])
def test_a_malformed_claim_ends_the_spare_before_anything(words, nfds):
    code, err = claim(words, nfds)
    assert code == 1 and "a claim must be" in err, (code, err)


def test_a_claim_that_is_no_supervisor_command_line_starts_nothing():
    assert claim(b"sandbox-supervisor\0--no-such-option\0", 6)[0] == 2  # a usage error: nothing started


def test_end_of_file_ends_the_spare_quietly():
    process, sock = start_spare()
    wait_ready(process)
    sock.close()
    assert finish(process) == (0, "")


def test_unknown_spare_options_are_refused():
    process, sock = start_spare("--dir", "/tmp")
    sock.close()
    code, err = finish(process)
    assert code == 2 and "--dir" in err


def test_the_namespaces_belong_to_the_sandbox_identity():
    process, sock = start_spare()
    try:
        wait_ready(process)
        owners = {}
        for fd in os.listdir(f"/proc/{process.pid}/fd"):
            target = os.readlink(f"/proc/{process.pid}/fd/{fd}")
            kind = target.split(":")[0]
            if kind not in ("user", "net"):
                continue
            ns = os.open(f"/proc/{process.pid}/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if kind == "net":  # its owner is a user namespace: that one's owner is what counts
                    user = fcntl.ioctl(ns, 0xB701)  # NS_GET_USERNS: an fd of the owning namespace
                    os.close(ns)
                    ns = user
                buf = fcntl.ioctl(ns, NS_GET_OWNER_UID, b"\0" * 4)
            finally:
                os.close(ns)
            owners[kind] = struct.unpack("I", buf)[0]
    finally:
        sock.close()
        finish(process)
    expected = settings.sandbox_owner()[0] if os.geteuid() == 0 else os.geteuid()
    assert owners == {"user": expected, "net": expected}, owners
