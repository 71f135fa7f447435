"""Behaviour where the runners' own features differ (docs/RUNNERS.md: /dev, /proc, masks, the
directories nsjail does not make), with block_network=True and with the default network; how
a runner is chosen; and what a runner refuses. Like every test in tests/sandbox,
each runs under each runner (the `runner` fixture of tests/conftest.py)."""

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import psutil
import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox._state import paths
from pysandbox.exception import InvalidError, SandboxTimeoutError, UnimplementedError
from pysandbox.runtime import cgroups, netplan

from ..hoststate import sandbox_dirs
from ..listeners import Listener, connect_from

pytestmark = pytest.mark.rootless

@pytest.fixture
def jailed(runner, sandboxes):
    """Create block_network sandboxes under `runner`."""
    return lambda *args, **kwargs: sandboxes(*args, block_network=True, **kwargs)


def run(sb, script: str) -> str:
    p = sb.exec("sh", "-c", script)
    assert p.wait() == 0, p.stderr.read()
    return p.stdout.read()


@pytest.mark.gvisor
def test_exec_exit_codes(jailed):
    sb = jailed()
    assert sb.exec("sh", "-c", "exit 3").wait() == 3
    assert sb.exec("sh", "-c", "kill -TERM $$").wait() == 128 + 15
    assert sb.exec("sleep", "30", timeout=1).wait() == -1


@pytest.mark.gvisor
def test_stdout_and_stderr_stream(jailed):
    sb = jailed()
    p = sb.exec("sh", "-c", "echo one; echo two >&2; sleep 0.2; echo three")
    assert [line for line in p.stdout] == ["one\n", "three\n"]
    assert p.stderr.read() == "two\n"
    assert p.wait() == 0


def test_env_and_workdir(jailed):
    sb = jailed(workdir="/repo/src", env={"GREETING": "hi"})
    assert run(sb, 'pwd; echo "$GREETING"; echo "$HOME"') == "/repo/src\nhi\n/root\n"
    assert run(sb, "stat -c %a /root") == "700\n"


def test_files_through_open_and_filesystem(jailed):
    sb = jailed()
    with sb.open("/tmp/note.txt", "w") as f:
        f.write("written from the host\n")
    assert run(sb, "cat /tmp/note.txt") == "written from the host\n"
    run(sb, "mkdir -p /data && echo inside > /data/out.txt")
    assert sb.filesystem.read_text("/data/out.txt") == "inside\n"


@pytest.mark.gvisor
def test_sandbox_timeout(jailed):
    sb = jailed("sleep", "100", timeout=2)
    with pytest.raises(SandboxTimeoutError):
        sb.wait()
    assert sb.returncode == 124


@pytest.mark.gvisor
def test_entrypoint_exit_code_and_output(jailed):
    sb = jailed("sh", "-c", "echo out; echo err >&2; exit 7")
    sb.wait()
    assert sb.returncode == 7
    assert sb.stdout.read() == "out\n"
    assert sb.stderr.read() == "err\n"


@pytest.mark.gvisor
def test_terminate(jailed):
    sb = jailed("sleep", "100")
    sb.terminate()
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 137  # the fixture checks that nothing is left behind


@pytest.mark.gvisor
def test_from_id_in_another_process(jailed):
    sb = jailed()
    script = textwrap.dedent(
        f"""
        import pysandbox as modal
        sb = modal.Sandbox.from_id({sb.object_id!r})
        print(sb.exec("echo", "from afar").stdout.read(), end="")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == "from afar\n"


@pytest.mark.gvisor
def test_seccomp_filter_is_active(jailed):
    sb = jailed()
    assert run(sb, "grep ^Seccomp: /proc/self/status") == "Seccomp:\t2\n"
    assert sb.exec("unshare", "--user", "true").wait() != 0


def test_root_inside_is_not_root_outside(jailed):
    sb = jailed()
    assert run(sb, "id -u; id -g") == "0\n0\n"
    p = sb.exec("sleep", "30")
    try:
        sleeper = []
        for _ in range(50):  # the exec's process appears a moment after exec() returns
            procs = psutil.Process(sb._record.supervisor.pid).children(recursive=True)
            sleeper = [proc for proc in procs if proc.cmdline()[:1] == ["sleep"]]
            if sleeper:
                break
            time.sleep(0.1)
        assert len(sleeper) == 1
        assert sleeper[0].uids().real == settings.sandbox_owner()[0] != 0
    finally:
        sb.exec("kill", "-9", str(p._pid)).wait()


def test_pty_exec_and_entrypoint(jailed):
    sb = jailed("sh", "-c", "tty; stty size", pty=True)
    sb.wait()
    assert sb.stdout.read().startswith("/dev/pts/") and sb.returncode == 0
    other = jailed()
    p = other.exec("sh", "-c", "test -t 0 && test -t 1 && echo terminal; echo err >&2", pty=True)
    assert p.stdout.read() == "terminal\r\nerr\r\n"
    assert p.wait() == 0


def test_dev_contents(jailed):
    sb = jailed()
    listing = run(sb, "ls -A /dev").split()
    assert listing == sorted(["core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
                              "stdout", "tty", "urandom", "zero"])
    assert run(sb, "head -c 4 /dev/zero | od -An -tx1") == " 00 00 00 00\n"
    assert run(sb, "echo gone > /dev/null; echo $?") == "0\n"


@pytest.mark.gvisor
def test_system_dirs_read_only_and_secrets_masked(jailed):
    sb = jailed()
    assert sb.exec("touch", "/usr/pysandbox-probe").wait() != 0
    assert run(sb, "cat /etc/shadow 2>/dev/null || true") == ""
    assert run(sb, "cat /proc/keys 2>/dev/null || true") == ""  # masked (docs/RUNNERS.md: how, per runner)
    assert sb.exec("sh", "-c", "echo x > /proc/sys/kernel/hostname").wait() != 0


@pytest.mark.gvisor
def test_private_tmp_and_writable_root(jailed):
    sb = jailed()
    run(sb, "echo x > /tmp/t && echo y > /scratch")
    assert not os.path.exists("/scratch")
    assert run(sb, "cat /scratch") == "y\n"


@pytest.mark.skipif(not cgroups.host().has("memory"), reason="no writable cgroup here (unprivileged on v1)")
def test_memory_limit_and_every_process_in_the_sandbox_cgroup(jailed):
    sb = jailed("sleep", "300", memory=(64, 128))
    hog = sb.exec("python3", "-c", "b = bytearray(400 << 20); b[::4096] = b'x' * len(b[::4096]); print('survived')")
    assert hog.wait() == 137 and hog.stdout.read() == ""
    cgroup = cgroups.load(paths.sandbox_dir(sb.object_id))
    tree = {child.pid for child in psutil.Process(sb._record.supervisor.pid).children(recursive=True)}
    for path in cgroup.unique_dirs():
        with open(path + "/cgroup.procs") as procs:
            assert {int(pid) for pid in procs.read().split()} == tree


@pytest.mark.gvisor
def test_volume_shared_between_sandboxes(jailed):
    with modal.Volume.ephemeral() as vol:
        first = jailed(volumes={"/data": vol})
        run(first, "echo kept > /data/f")
        second = jailed(volumes={"/mnt/data": vol})
        assert run(second, "cat /mnt/data/f") == "kept\n"


@pytest.fixture
def networked(runner, sandboxes):
    """Create sandboxes with the default network under `runner`."""
    return sandboxes


@pytest.fixture
def host_listener():
    """A server on the host's own address (the source address of its default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((socket.gethostbyname("deb.debian.org"), 80))
        address = probe.getsockname()[0]
    server = Listener(socket.AF_INET, (address, 0))
    yield server
    server.close()


def test_default_network_resolves_names_and_reaches_debian(networked):
    sb = networked()
    assert "deb.debian.org" in run(sb, "getent hosts deb.debian.org")
    assert run(sb, "cat /etc/resolv.conf").split() == ["nameserver", "10.0.2.3"]
    assert connect_from(sb, "deb.debian.org", 80) == "connected"


def test_default_network_cannot_reach_host_loopback(networked):
    service = Listener(socket.AF_INET, ("127.0.0.1", 0))
    try:
        sb = networked()
        # Its own 127.0.0.1 has nothing there, and the gateway's path to the host's loopback is closed.
        assert connect_from(sb, "127.0.0.1", service.port) == "ConnectionRefusedError"
        assert connect_from(sb, "10.0.2.2", service.port) == "ConnectionRefusedError"
        assert service.accepted == 0
    finally:
        service.close()


def test_tunnel_to_a_server_in_the_sandbox(networked):
    sb = networked("python3", "-m", "http.server", "8080", unencrypted_ports=[8080], workdir="/srv")
    sb.filesystem.write_text("through the tunnel", "/srv/greeting.txt")
    url = sb.tunnels()[8080].url + "/greeting.txt"
    end = time.monotonic() + 30
    while True:  # until the server listens
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert (response.status, response.read()) == (200, b"through the tunnel")
                return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def test_outbound_cidr_allowlist_is_enforced(networked, host_listener):
    address = host_listener.address[0]
    allowed = networked(outbound_cidr_allowlist=[f"{address}/32"])
    assert connect_from(allowed, address, host_listener.port) == "connected"
    assert connect_from(allowed, "deb.debian.org", 80) == "ConnectionRefusedError"  # DNS works, TCP does not
    assert host_listener.wait_for(1) == 1


@pytest.mark.gvisor  # there the runner child execs runsc only once the network is connected
def test_network_setup_failure_fails_the_sandbox_before_its_entrypoint(networked, monkeypatch):
    monkeypatch.setattr(netplan, "egress_rules", lambda *policy, **hook: "not a ruleset\n")  # nft refuses it
    with modal.Volume.ephemeral() as vol:
        sb = networked("sh", "-c", "touch /data/ran", volumes={"/data": vol})
        sb.wait(raise_on_termination=False)
        assert sb.returncode == 127  # the supervisor killed the runner before init was released
        assert vol.listdir("/") == []


@pytest.mark.gvisor
def test_paths_with_colons_and_quotes_mount_under_either_runner(jailed):
    # nsjail's flags separate paths with ':'; its configuration file (runtime/nsjail.py) does not.
    with modal.Volume.ephemeral() as vol:
        sb = jailed(volumes={'/data:x "q"': vol})
        assert run(sb, 'echo ok > \'/data:x "q"/f\' && cat \'/data:x "q"/f\'') == "ok\n"


@pytest.mark.gvisor
def test_disk_limit_holds_root_and_tmp(jailed):
    sb = jailed(ephemeral_disk=64, workdir="/app")
    # Python's stat: coreutils' statx fails under this runsc (EINVAL: AT_NO_AUTOMOUNT, docs/RUNNERS.md)
    modes = "python3 -c 'import os; print(*(oct(os.stat(d).st_mode & 0o7777) for d in (\"/root\", \"/tmp\")))'"
    assert run(sb, f"pwd; {modes}") == "/app\n0o700 0o1777\n"
    p = sb.exec("sh", "-c", "head -c 40000000 /dev/zero > /big; head -c 40000000 /dev/zero > /tmp/big")
    assert p.wait() != 0 and "No space left" in p.stderr.read()


RUNNER_BINARIES = {"bwrap": "bwrap", "nsjail": "nsjail", "runsc": "gvisor"}  # binary -> runner


def _runner_of(sb) -> str:
    """The runner binary the sandbox's supervisor started (once its child has exec'd it; a
    child that is still forking or already a zombie has no command line yet)."""
    for _ in range(100):
        names = set()
        for child in psutil.Process(sb._record.supervisor.pid).children():
            with contextlib.suppress(psutil.Error):
                names.update(os.path.basename(arg) for arg in child.cmdline()[:1])
        runners = names & set(RUNNER_BINARIES)
        if runners:
            return RUNNER_BINARIES[runners.pop()]
        time.sleep(0.01)
    return sorted(names)


@pytest.mark.parametrize("chosen", ["bwrap", "nsjail"])
@pytest.mark.gvisor
def test_runner_chosen_per_sandbox(jailed, runner, chosen):
    sb = jailed("sleep", "60", experimental_options={"runner": chosen})
    assert _runner_of(sb) == chosen
    assert _runner_of(jailed("sleep", "60")) == runner  # PYSANDBOX_RUNNER's, as before


@pytest.mark.parametrize(
    "options, error, words",
    [
        ({"runner": "docker"}, InvalidError, "choose one of bwrap, nsjail"),
        ({"enable_exit_snapshot": True}, UnimplementedError, "understands only 'runner'.*and 'tether'"),  # Modal's own
        ({1: "x"}, InvalidError, "str keys"),
    ],
)
@pytest.mark.gvisor
def test_bad_experimental_options_are_refused(app, options, error, words):
    before = sandbox_dirs()
    with pytest.raises(error, match=words):
        modal.Sandbox.create(app=app, block_network=True, experimental_options=options)
    assert sandbox_dirs() == before  # refused before any work


@pytest.mark.gvisor
def test_unknown_runner_is_refused(app, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_RUNNER", "docker")
    with pytest.raises(InvalidError, match="bwrap, nsjail"):
        modal.Sandbox.create(app=app, block_network=True)


BINARY_VARIABLE = {"bwrap": "PYSANDBOX_BWRAP", "nsjail": "PYSANDBOX_NSJAIL", "gvisor": "PYSANDBOX_RUNSC"}


@pytest.mark.gvisor
def test_a_missing_runner_is_refused_before_any_work(app, runner, monkeypatch, tmp_path):
    monkeypatch.setenv(BINARY_VARIABLE[runner], str(tmp_path / "no-runner"))
    before = sandbox_dirs()
    with pytest.raises(InvalidError, match=BINARY_VARIABLE[runner]):
        modal.Sandbox.create(app=app, block_network=True)
    assert sandbox_dirs() == before


@pytest.mark.gvisor
def test_only_the_chosen_runner_is_needed(jailed, runner, monkeypatch, tmp_path):
    for name, variable in BINARY_VARIABLE.items():
        if name != runner:
            monkeypatch.setenv(variable, str(tmp_path / "no-runner"))
    assert run(jailed(), "echo ok") == "ok\n"
