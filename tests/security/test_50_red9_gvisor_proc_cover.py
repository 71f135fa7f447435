"""Red team, session 9: gVisor's default network covers /proc/sys/net/core with a non-recursive bind of /proc
(native/supervisor/netns.c, hide_root_netns_probe).

For an unprivileged caller the runner makes that mount namespace in the sandbox's user namespace, where every
mount copied from the host is locked to its children; a non-recursive bind of a mount with a locked child is
refused (EINVAL). A host whose /proc has a submount (systemd's binfmt_misc automount at
/proc/sys/fs/binfmt_misc, the default on Debian, Ubuntu and Fedora) therefore starts no rootless gVisor
sandbox with the default network: "hiding /proc/sys/net/core from the runner: Invalid argument". The tmpfs it
replaced mounted there. A recursive bind (MS_BIND | MS_REC) is allowed there and still lets a nested user
namespace mount its own proc (binfmt_misc sits on an empty directory, which mount_too_revealing accepts):
netns.c binds recursively when the plain bind is refused so.

The test makes such a host in a private mount namespace of its own (root: a tmpfs at binfmt_misc) and starts
a sandbox there as the rootless suite's user (.ci/rootless), with its virtualenv and this tree.
"""

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs_gvisor, pytest.mark.gvisor(only=True)]

USER = "pysbtest"
TREE = Path(__file__).resolve().parents[2]
SCRIPT = """
import pysandbox as modal
sb = modal.Sandbox.create("sleep", "30", app=modal.App.lookup("red9-proc", create_if_missing=True))
try:
    p = sb.exec("echo", "started")
    print(p.stdout.read().strip(), p.wait())
finally:
    sb.terminate()
"""


def _rootless_python():
    try:
        home = Path(pwd.getpwnam(USER).pw_dir)
    except KeyError:
        return None
    tag = os.environ.get("PYSANDBOX_ROOTLESS_TAG", "")
    python = home / f"venv{'-' + tag if tag else ''}" / "bin" / "python"
    return python if python.exists() else None


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or _rootless_python() is None,
                    reason="root makes the /proc submount; the rootless user and its venv come from .ci/rootless")
def test_a_rootless_gvisor_sandbox_starts_on_a_host_whose_proc_has_a_submount():
    setup = ("mount -t tmpfs red9 /proc/sys/fs/binfmt_misc && findmnt -n -o FSTYPE /proc/sys/fs/binfmt_misc && "
             f"exec runuser -u {USER} -- env PYSANDBOX_RUNNER=gvisor PYTHONPATH={TREE} {_rootless_python()} -c \"$0\"")
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", setup, SCRIPT],
                            capture_output=True, text=True, timeout=120, cwd="/", env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    # The attack was made: the submount was there when the sandbox started, as the unprivileged user.
    assert result.stdout.startswith("tmpfs\n"), (result.stdout, result.stderr)
    assert result.stdout.splitlines()[1:] == ["started 0"], (result.stdout, result.stderr[-2000:], sys.executable)
