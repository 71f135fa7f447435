"""A root caller's sandboxes get the default network whatever the mode of the host's
/dev/net/tun: many hosts keep it 0600, and slirp4netns opens it as the sandbox identity. The
test runs a caller in a mount namespace of its own where /dev/net/tun is root's alone, so the
host's node is never changed."""

import os
import subprocess
import sys
import textwrap

import pytest

from ..listeners import host_address

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a root caller's path (an unprivileged one is told "
                                "what to change: tests/unit/test_doctor.py)")

CALLER = textwrap.dedent("""
    import os, socket, stat, sys
    import pysandbox as modal
    assert stat.S_IMODE(os.stat("/dev/net/tun").st_mode) == 0o600, "the caller's tun node is root's alone"
    server = socket.create_server((sys.argv[1], 0))
    sb = modal.Sandbox.create(app=modal.App.lookup("tun", create_if_missing=True))
    code = f"import socket; socket.create_connection(({sys.argv[1]!r}, {server.getsockname()[1]}), timeout=10)"
    p = sb.exec("python3", "-c", code + "; print('connected')")
    print(p.stdout.read().strip(), p.stderr.read().strip(), p.wait())
    sb.terminate()
""")


def test_the_default_network_works_with_a_host_tun_node_open_to_root_only(runner, state_home, tmp_path):
    node = tmp_path / "nodes"
    node.mkdir()
    setup = (f"mount -t tmpfs -o mode=0755 tun-test {node} && mknod -m 0600 {node}/tun c 10 200 && "
             f"mount --bind {node}/tun /dev/net/tun && exec \"$0\" -c \"$1\" \"$2\"")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup,
                             sys.executable, CALLER, host_address()], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "connected  0", result.stderr
    assert "sandboxes get no network" not in result.stderr
