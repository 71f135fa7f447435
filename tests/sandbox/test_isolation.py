"""What code inside a sandbox can see and touch: checked from inside."""

import os
import sys

import pytest

from pysandbox.runtime.layout import SANDBOX_ROOT_CAPS

pytestmark = pytest.mark.rootless

# linux/capability.h's numbers of the capabilities sandbox root keeps.
CAP_NUMBERS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7,
               "SETPCAP": 8, "NET_BIND_SERVICE": 10, "SYS_CHROOT": 18, "MKNOD": 27,
               "AUDIT_WRITE": 29, "SETFCAP": 31}
SANDBOX_ROOT_CAP_MASK = sum(1 << CAP_NUMBERS[name] for name in SANDBOX_ROOT_CAPS)


def run(sb, script):
    p = sb.exec("sh", "-c", script)
    out = p.stdout.read()
    p.wait()
    return out


def _status(sb, prefix=""):
    out = run(sb, f"{prefix}cat /proc/self/status")
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_sandbox_root_holds_only_dockers_capabilities_and_no_new_privs(sb):
    status = _status(sb)
    for field in ("CapPrm", "CapEff", "CapBnd"):
        assert int(status[field], 16) == SANDBOX_ROOT_CAP_MASK, field
    assert int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    # Any other user of the sandbox holds none, and cannot regain them.
    other = _status(sb, "setpriv --reuid=1000 --regid=1000 --clear-groups ")
    for field in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(other.get(field, "0"), 16) == 0, field


def test_host_pids_invisible(sb):
    pids = sorted(int(p) for p in run(sb, "ls /proc").split() if p.isdigit())
    assert pids[0] == 1
    assert len(pids) < 10
    assert run(sb, "cat /proc/1/cmdline | tr '\\0' ' '").startswith("/__pysandbox/init")


def test_host_secrets_invisible(sb):
    prefix = os.path.realpath(sys.base_prefix)
    python_path = {prefix.split("/")[2]} if prefix.startswith("/root/") else set()
    assert set(run(sb, "ls -A /root").split()) == python_path  # at most the caller's Python, read-only
    if python_path:
        assert run(sb, f"ls -A /root/{python_path.pop()}").split() == [prefix.split("/")[3]]
    assert run(sb, "ls /home 2>&1; echo rc=$?").strip().endswith("rc=2") or run(sb, "ls -A /home") == ""
    assert run(sb, "cat /etc/shadow; echo end") == "end\n"
    assert run(sb, "ls -A /etc/ssh") == ""
    assert os.path.realpath(sys.prefix) == os.path.realpath(sys.base_prefix) or \
        run(sb, f"ls {sys.prefix} 2>/dev/null; echo rc=$?").strip().endswith("rc=2")


def test_system_dirs_read_only(sb):
    out = run(sb, "touch /usr/x 2>&1; touch /etc/x 2>&1; echo done")
    assert out.count("Read-only file system") == 2


def test_private_tmp(sb, tmp_path):
    marker = "/tmp/pysandbox-host-marker"
    with open(marker, "w") as f:
        f.write("host")
    try:
        assert run(sb, f"cat {marker} 2>/dev/null; echo rc=$?") == "rc=1\n"
        assert run(sb, "echo x > /tmp/inside && cat /tmp/inside") == "x\n"
        assert not os.path.exists("/tmp/inside")
    finally:
        os.unlink(marker)


def test_python_matches_caller(sb):
    expected = "%d.%d" % sys.version_info[:2]
    for exe in ("python", "python3"):
        out = run(sb, f"{exe} -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
        assert out == expected + "\n", exe


def test_block_network_leaves_loopback_only(sandboxes):
    sb = sandboxes(block_network=True)  # the default network is tested in test_network.py
    out = run(sb, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '")
    assert out.split() == ["lo"]
