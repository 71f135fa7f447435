"""Item 14: no host file descriptor reaches the sandbox (runc CVE-2024-21626:
a leaked fd of a host directory is a way out of any mount namespace)."""

import json
import os

import pytest

from ._inside import py_ok

SANDBOX_PATHS = ("/dev/null", "/dev/pts/", "/proc/")

pytestmark = pytest.mark.rootless

LIST_FDS = """
import json
fds = {}
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    for fd in os.listdir(f"/proc/{pid}/fd") if pid != "1" else []:
        try:
            fds[f"{pid}/{fd}"] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
print(json.dumps(fds))
"""


def test_no_host_fd_in_any_sandbox_process(sandboxes, tmp_path):
    marker = tmp_path / "host-secret"
    marker.write_text("host")
    leaked = os.open(marker, os.O_RDONLY)  # inheritable, as a careless caller's fd would be
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(leaked, True)
    os.set_inheritable(directory, True)
    try:
        sb = sandboxes("sleep", "100")
        out = py_ok(sb, LIST_FDS)
    finally:
        os.close(leaked)
        os.close(directory)
    fds = json.loads(out)
    assert fds, out
    # No host file at all: even the entrypoint's stdout and stderr are pipes the supervisor
    # copies into the files in the sandbox directory (native/supervisor/output.c).
    host_files = {fd: target for fd, target in fds.items() if target.startswith("/") and not target.startswith(SANDBOX_PATHS)}
    assert host_files == {}
    assert {target.split(":")[0] for target in fds.values() if not target.startswith("/")} <= {"pipe", "socket", "anon_inode"}
    assert not [target for target in fds.values() if str(tmp_path) in target]


@pytest.mark.gvisor
def test_exec_gets_only_stdio(sb):
    out = py_ok(sb, """
        fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        print(fds[:3], len(fds))  # 0-2 and the fd listing /proc/self/fd
    """)
    assert out == "[0, 1, 2] 4\n"
