"""The sandbox's network as users see it: outbound access, tunnels, the allowlist, readiness probes."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import pysandbox as modal
from pysandbox.exception import ConflictError, InvalidError, TimeoutError

from ..listeners import Listener, connect_from, host_address, refused

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

@pytest.fixture
def host_server():
    server = Listener(socket.AF_INET, (host_address(), 0))
    yield server
    server.close()


def test_default_network_resolves_names_and_reaches_debian(sb):
    p = sb.exec("getent", "hosts", "deb.debian.org")
    assert p.wait() == 0 and "deb.debian.org" in p.stdout.read()
    assert connect_from(sb, "deb.debian.org", 80) == "connected"


def test_block_network_leaves_loopback_only(sandboxes):
    sb = sandboxes(block_network=True)
    assert connect_from(sb, "203.0.113.80", 80) == "OSError"  # ENETUNREACH: no route at all
    p = sb.exec("python3", "-c", "import socket; s = socket.create_server(('127.0.0.1', 5000)); "
                "socket.create_connection(('127.0.0.1', 5000)).close(); print('loopback')")
    assert p.stdout.read() == "loopback\n"


def test_default_network_reaches_a_host_server_on_its_own_address(sb, host_server):
    assert connect_from(sb, host_address(), host_server.port) == "connected"
    assert host_server.wait_for(1) == 1


def http_get(url, deadline=30):
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def test_seed_http_server_is_reachable_through_its_tunnel(sandboxes):
    sb = sandboxes("python", "-m", "http.server", "8080", unencrypted_ports=[8080], workdir="/srv")
    assert sb.exec("sh", "-c", "printf 'hello through the tunnel' > /srv/greeting.txt").wait() == 0
    tunnels = sb.tunnels()
    assert list(tunnels) == [8080]
    tunnel = tunnels[8080]
    assert tunnel.host == "127.0.0.1" and tunnel.tcp_socket == ("127.0.0.1", tunnel.port)
    assert tunnel.url == f"http://127.0.0.1:{tunnel.port}"
    status, body = http_get(tunnel.url + "/greeting.txt")
    assert (status, body) == (200, "hello through the tunnel")


def test_tunnels_are_the_same_from_another_process(sandboxes):
    sb = sandboxes("sleep", "60", unencrypted_ports=[9000], encrypted_ports=[9443])
    mine = sb.tunnels()
    code = ("import json, sys, pysandbox as modal; t = modal.Sandbox.from_id(sys.argv[1]).tunnels(); "
            "print(json.dumps({p: [v.host, v.port] for p, v in t.items()}))")
    out = subprocess.run([sys.executable, "-c", code, sb.object_id], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {str(p): [t.host, t.port] for p, t in mine.items()}
    assert set(mine) == {9000, 9443} and mine[9000].port != mine[9443].port


def test_encrypted_port_keeps_modals_shape_without_a_tcp_socket(sandboxes):
    sb = sandboxes("sleep", "60", encrypted_ports=[8443])
    tunnel = sb.tunnels()[8443]
    assert tunnel.tls_socket == ("127.0.0.1", tunnel.port)
    with pytest.raises(InvalidError):
        tunnel.tcp_socket


def test_tunnels_without_ports_are_empty(sb):
    assert sb.tunnels() == {}


@pytest.mark.parametrize("kwargs", [
    {"block_network": True, "unencrypted_ports": [80]},
    {"block_network": True, "encrypted_ports": [443]},
    {"block_network": True, "outbound_cidr_allowlist": ["10.0.0.0/8"]},
    {"unencrypted_ports": [0]},
    {"unencrypted_ports": [65536]},
    {"unencrypted_ports": ["80"]},
    {"unencrypted_ports": [80], "encrypted_ports": [80]},
    {"outbound_cidr_allowlist": ["not-a-cidr"]},
    {"outbound_cidr_allowlist": "10.0.0.0/8"},
    {"readiness_probe": "tcp:8080"},
])
def test_bad_network_options_are_rejected_before_anything_starts(app, kwargs):
    before = list(modal.Sandbox.list(app_id=app.app_id))
    with pytest.raises(InvalidError):
        modal.Sandbox.create(app=app, **kwargs)
    assert list(modal.Sandbox.list(app_id=app.app_id)) == before


def test_outbound_cidr_allowlist_allows_only_its_networks(sandboxes, host_server, runner):
    address = host_address()
    allowed = sandboxes(outbound_cidr_allowlist=[f"{address}/32"])
    assert connect_from(allowed, address, host_server.port) == "connected"
    assert connect_from(allowed, "deb.debian.org", 80) == refused(runner)  # DNS works, TCP does not
    elsewhere = sandboxes(outbound_cidr_allowlist=["198.51.100.0/24"])
    assert connect_from(elsewhere, address, host_server.port) == refused(runner)
    assert host_server.wait_for(1) == 1


def test_probe_validation():
    with pytest.raises(InvalidError):
        modal.Probe()
    with pytest.raises(InvalidError):
        modal.Probe.with_tcp(0)
    with pytest.raises(InvalidError):
        modal.Probe.with_tcp(8080, interval_ms=0)
    with pytest.raises(InvalidError):
        modal.Probe.with_exec()
    with pytest.raises(InvalidError):
        modal.Probe.with_exec("true", 1)
    probe = modal.Probe.with_exec("true", interval_ms=50)
    assert probe == modal.Probe(exec_argv=("true",), interval_ms=50)
    with pytest.raises(Exception):
        probe.interval_ms = 10  # frozen


def test_tcp_probe_waits_for_the_server(sandboxes):
    sb = sandboxes("sh", "-c", "sleep 0.5; exec python3 -m http.server 8080",
                   readiness_probe=modal.Probe.with_tcp(8080, interval_ms=50))
    sb.wait_until_ready(timeout=30)
    p = sb.exec("python3", "-c", "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080').status)")
    assert p.stdout.read() == "200\n"


def test_exec_probe_and_aio(sandboxes):
    import asyncio

    sb = sandboxes("sh", "-c", "sleep 0.3; touch /tmp/ready; sleep 60",
                   readiness_probe=modal.Probe.with_exec("test", "-f", "/tmp/ready"))
    asyncio.run(sb.wait_until_ready.aio(timeout=30))
    assert sb.exec("test", "-f", "/tmp/ready").wait() == 0


def test_wait_until_ready_errors(sandboxes):
    plain = sandboxes()
    with pytest.raises(InvalidError):
        plain.wait_until_ready()
    never = sandboxes("sleep", "60", readiness_probe=modal.Probe.with_exec("false"))
    with pytest.raises(InvalidError):
        never.wait_until_ready(timeout=0)
    with pytest.raises(TimeoutError):
        never.wait_until_ready(timeout=0.5)
    never.terminate(wait=True)
    with pytest.raises(ConflictError):
        never.wait_until_ready(timeout=5)


def test_without_a_helper_ports_are_refused_and_default_is_loopback_only(sandboxes, app, monkeypatch, caplog):
    from pysandbox.runtime import netplan

    monkeypatch.setattr(netplan, "tool", lambda name: None)
    monkeypatch.setattr(netplan, "_warned", [])
    with pytest.raises(InvalidError, match="slirp4netns"):
        modal.Sandbox.create(app=app, unencrypted_ports=[8080])
    sb = sandboxes()
    assert connect_from(sb, "203.0.113.80", 80) == "OSError"  # no route: loopback only
    assert [r.getMessage() for r in caplog.records if r.name == "pysandbox"][0].startswith(
        "pysandbox: sandboxes get no network")
