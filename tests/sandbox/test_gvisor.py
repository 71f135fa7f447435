"""The gvisor runner (docs/RUNNERS.md): how it is chosen, what it refuses before any work, and where
it differs from the other runners. The behaviour tests marked pytest.mark.gvisor run under it too;
these run under every runner, each creating its gVisor sandboxes itself, as root and rootless (not for a
caller gVisor refuses, one without a subordinate id range: test_identity_single.py asserts the refusal)."""

import os
import socket

import pytest

import pysandbox as modal
from pysandbox import identity, settings
from pysandbox._state import paths, volumes
from pysandbox.exception import ConflictError, InvalidError, UnimplementedError
from pysandbox.runtime import cgroups, netplan

from ..hoststate import host_id, sandbox_dirs
from ..listeners import Listener, connect_from, host_address, refused
from .test_network import http_get

pytestmark = [pytest.mark.rootless, pytest.mark.needs_gvisor]


def _kernel(sb) -> str:
    return sb.exec("uname", "-r").stdout.read().strip()


@pytest.mark.parametrize("how", ["runtime", "experimental_options", "PYSANDBOX_RUNNER"])
def test_each_way_of_asking_runs_the_sandbox_under_gvisor(sandboxes, monkeypatch, how):
    asked = {"runtime": {"runtime": "gvisor"}, "experimental_options": {"experimental_options": {"runner": "gvisor"}},
             "PYSANDBOX_RUNNER": {}}[how]
    if how == "PYSANDBOX_RUNNER":
        monkeypatch.setenv("PYSANDBOX_RUNNER", "gvisor")
    sb = sandboxes("sleep", "60", block_network=True, **asked)
    assert _kernel(sb) != os.uname().release  # gVisor's kernel answers, not the host's


def test_runtime_vm_stays_unimplemented_and_gvisor_cannot_contradict_the_runner(app):
    before = sandbox_dirs()
    with pytest.raises(UnimplementedError, match="runtime='vm'"):
        modal.Sandbox.create(app=app, runtime="vm", block_network=True)
    with pytest.raises(InvalidError, match="contradict"):
        modal.Sandbox.create(app=app, runtime="gvisor", block_network=True, experimental_options={"runner": "bwrap"})
    assert sandbox_dirs() == before


def test_the_default_network_is_gvisors_netstack_on_the_supervisors_link(sandboxes):
    # runsc took tap0's address and routes: its netstack answers for them, not the host kernel's stack.
    sb = sandboxes("sleep", "60", runtime="gvisor")
    p = sb.exec("ip", "-4", "addr", "show", "tap0")
    assert p.wait() == 0 and "inet 10.0.2.100/24" in p.stdout.read()
    assert _kernel(sb) != os.uname().release
    assert sb.exec("getent", "hosts", "deb.debian.org").wait() == 0  # slirp4netns's resolver, through the filter


def test_a_running_sandboxs_policy_changes_by_networks_and_by_names_only_if_created_with_names(sandboxes):
    address = host_address()
    host_server = Listener(socket.AF_INET, (address, 0))
    try:
        _change_policy(sandboxes, address, host_server)
    finally:
        host_server.close()


def _change_policy(sandboxes, address, host_server):
    sb = sandboxes("python3", "-m", "http.server", "8000", runtime="gvisor", unencrypted_ports=[8000])
    assert connect_from(sb, address, host_server.port) == "connected"
    sb._experimental_set_outbound_network_policy(outbound_cidr_allowlist=["198.51.100.0/24"])
    assert connect_from(sb, address, host_server.port) == refused("gvisor")
    assert http_get(sb.tunnels()[8000].url)[0] == 200  # its replies still pass the link filter
    sb._experimental_set_outbound_network_policy()
    assert connect_from(sb, address, host_server.port) == "connected"
    # The DNS filter's link is made before runsc starts, for a sandbox created with names filtered only.
    with pytest.raises(InvalidError, match="only in a sandbox created with outbound_domain_allowlist"):
        sb._experimental_set_outbound_network_policy(outbound_domain_allowlist=["example.com"])
    assert connect_from(sb, address, host_server.port) == "connected"  # the policy is as it was
    assert host_server.wait_for(3) == 3


def test_names_are_filtered_through_the_dns_filters_link_which_gvisor_adopted(sandboxes):
    # runsc took the link's address and route into its netstack: the kernel's side of it has none.
    sb = sandboxes("sleep", "60", runtime="gvisor", outbound_domain_allowlist=["deb.debian.org"])
    assert sb.filesystem.read_text("/etc/resolv.conf").split()[:2] == ["nameserver", netplan.FILTER_LINK_DNS]
    p = sb.exec("ip", "-4", "addr", "show", netplan.FILTER_LINK)
    assert p.wait() == 0 and "inet 10.0.3.1/30" in p.stdout.read()
    assert sb.exec("getent", "hosts", "deb.debian.org").wait() == 0
    assert sb.exec("getent", "hosts", "example.com").wait() == 2  # NXDOMAIN from the filter


def test_calls_that_need_a_descriptor_from_the_sandbox_say_so(sandboxes):
    sb = sandboxes("sleep", "60", runtime="gvisor", block_network=True)
    with pytest.raises(InvalidError, match="gVisor runner cannot give .*mount_image"):
        sb.mount_image("/mnt/x", modal.Image.from_scratch())
    assert list(paths.SandboxDir.of(sb.object_id).mounts.glob("[0-9]*")) == []  # the refused mount left no layer
    # Refused before any work (the image not resolved: under load, that waited on the image store), from
    # another handle too, once the arguments are checked (tests/images/test_mount_image.py).
    with pytest.raises(InvalidError, match="gVisor runner cannot give .*mount_image"):
        modal.Sandbox.from_id(sb.object_id).mount_image("/mnt/x", modal.Image.from_scratch())
    with pytest.raises(InvalidError, match="gVisor runner cannot give .*unmount_image"):
        sb.unmount_image("/mnt/x")
    sb.mkdir("/tmp/made")  # what init answers without a descriptor works, and what it relays
    assert sb.ls("/tmp") == ["made"]
    with sb.open("/tmp/made/f", "w") as f:
        f.write("relayed")
    assert sb.filesystem.read_text("/tmp/made/f") == "relayed"
    assert sb.exec("echo", "still running").stdout.read() == "still running\n"


def test_what_it_writes_is_owned_on_the_host_by_the_sandbox_identitys_ids(sandboxes, monkeypatch):
    # The OCI user namespace maps sandbox ids as the other runners do (identity.py): the gofer writes as those.
    monkeypatch.setenv("PYSANDBOX_WRITABLE_ROOT_MAX", "0")  # the root on the state disk, where the host sees it
    sb = sandboxes("sleep", "60", runtime="gvisor", block_network=True)
    assert sb.exec("sh", "-c", "echo x > /made && mkdir /dir && chown 1000:1001 /dir").wait() == 0
    upper = paths.SandboxDir.of(sb.object_id).upper
    found = {name: os.lstat(os.path.join(d, name)) for d, dirs, names in os.walk(upper) for name in names + dirs}
    assert (found["made"].st_uid, found["made"].st_gid) == settings.sandbox_owner()
    assert (found["dir"].st_uid, found["dir"].st_gid) == (host_id(identity.current().uids, 1000),
                                                          host_id(identity.current().gids, 1001))


def test_a_volume_gets_the_same_owners_from_gvisor_and_bwrap(sandboxes):
    vol = modal.Volume.from_name("gvisor-owners", create_if_missing=True)
    for runner in ("gvisor", "bwrap"):
        sb = sandboxes("sleep", "60", volumes={"/v": vol}, block_network=True,
                       experimental_options={"runner": runner})
        assert sb.exec("sh", "-c", f"echo x > /v/{runner} && mkdir /v/{runner}.d && chown 1000 /v/{runner}.d").wait() == 0
    data = volumes.path("gvisor-owners") / "data"
    owners = {name: (os.lstat(data / name).st_uid, os.lstat(data / name).st_gid) for name in os.listdir(data)}
    assert owners["gvisor"] == owners["bwrap"] == settings.sandbox_owner()
    assert owners["gvisor.d"] == owners["bwrap.d"] == (host_id(identity.current().uids, 1000),
                                                       settings.sandbox_owner()[1])


@pytest.fixture
def failing_runsc(tmp_path, monkeypatch):
    """A runsc that writes `lines` copies of a message to stderr and fails, as runsc does when it cannot start."""
    def make(lines: int) -> str:
        fake = tmp_path / "runsc"
        fake.write_text(f"#!/bin/sh\nyes 'runsc: cannot start the sandbox' 2>/dev/null | head -n {lines} >&2\nexit 1\n")
        fake.chmod(0o755)
        monkeypatch.setenv("PYSANDBOX_RUNSC", str(fake))
        return "runsc: cannot start the sandbox"
    return make


def test_what_runsc_says_when_it_cannot_start_is_the_cause(app, failing_runsc):
    # Its stdout and stderr are a socket the supervisor copies into supervisor.log (F2: not a host file).
    said = failing_runsc(1)
    with pytest.raises(ConflictError, match=f"already finished \\({said}\\)"):
        modal.Sandbox.create("sleep", "60", app=app, runtime="gvisor", block_network=True).exec("true")


def test_what_runsc_and_init_write_to_the_log_is_bounded(app, failing_runsc, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_RUNNER_LOG_MAX", str(1 << 16))
    failing_runsc(100_000)  # 3 MB
    sb = modal.Sandbox.create("sleep", "60", app=app, runtime="gvisor", block_network=True)
    assert sb.wait(raise_on_termination=False) is None and sb.returncode == 1
    log = paths.SandboxDir.of(sb.object_id).log.read_bytes()
    assert log.startswith(b"runsc: cannot start the sandbox\n") and len(log) < (1 << 16) + 4096, len(log)


def test_an_exec_with_a_pty_runs_on_a_terminal_init_relays(sandboxes):
    # exec(pty=True) runs on a terminal init makes inside, which a process of init's relays to the host's pipes
    # (docs/ARCHITECTURE.md, Terminals; test_pty.py), under gVisor as under the other runners.
    sb = sandboxes("sleep", "60", runtime="gvisor", block_network=True)
    p = sb.exec("tty", pty=True)
    assert p.stdout.read().startswith("/dev/pts/") and p.wait() == 0
    # The relay went with its process: init, the entrypoint and ps are all that run.
    running = [line.split() for line in sb.exec("ps", "-e", "-o", "stat=,comm=").stdout.read().splitlines()]
    assert running == [["Ss", "init"], ["Ss", "sleep"], ["Rs", "ps"]], running


@pytest.mark.skipif(not cgroups.host().has("memory"), reason="no writable cgroup here (unprivileged on v1)")
def test_the_memory_limit_ends_the_whole_sandbox(sandboxes):
    """The supervisor's cgroup holds runsc, its gofer and its Sentry, which holds every sandbox process's memory:
    the host's OOM killer ends the Sentry, so the sandbox ends (137), not only the process that hogged."""
    sb = sandboxes("sleep", "300", runtime="gvisor", block_network=True, memory=(64, 128))
    hog = sb.exec("python3", "-c", "b = bytearray(400 << 20); b[::4096] = b'x' * len(b[::4096]); print('survived')")
    assert hog.wait() == 137 and hog.stdout.read() == ""
    assert sb.wait(raise_on_termination=False) is None and sb.returncode == 137
