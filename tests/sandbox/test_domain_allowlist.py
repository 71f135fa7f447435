"""outbound_domain_allowlist and _experimental_set_outbound_network_policy, as users see them.

The sandbox's DNS filter forwards to a DNS server this test runs on the host's loopback
(PYSANDBOX_DNS_UPSTREAM), whose names point at a listener on the host's own address: the only
traffic is between the sandbox, loopback and that address."""

import asyncio
import socket
import time

import pytest

import pysandbox as modal
from pysandbox.exception import InvalidError
from pysandbox.runtime import netplan

from ..dnsserver import DNSServer
from ..listeners import Listener, connect_all_from, connect_from, host_address, refused, stop_serving

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

UNUSED = "198.51.100.7"  # TEST-NET-2: a name may point there, nothing connects to it


@pytest.fixture
def dns(monkeypatch):
    server = DNSServer()
    monkeypatch.setenv("PYSANDBOX_DNS_UPSTREAM", server.address)
    yield server
    server.close()


@pytest.fixture
def server(dns):
    listener = Listener(socket.AF_INET, (host_address(), 0))
    for name in ("ok.test", "other.test", "a.wild.test", "x.y.wild.test", "wild.test", "evilwild.test"):
        dns.records[name] = [(host_address(), 60)]
    yield listener
    listener.close()


def unfiltered_resolver(runner):
    """The resolver resolv.conf names while names are not filtered: slirp4netns's; under gVisor, in a sandbox
    created with names filtered, the DNS filter's link's for good (it forwards every name then)."""
    return netplan.FILTER_LINK_DNS if runner == "gvisor" else netplan.DNS


def resolve(sb, name):
    """The addresses `name` resolves to in the sandbox; [] when it does not resolve."""
    p = sb.exec("getent", "ahostsv4", name)
    p.wait()
    return sorted({line.split()[0] for line in p.stdout.read().splitlines()})


def test_only_allowed_names_resolve_and_only_their_addresses_are_reachable(sandboxes, dns, server):
    sb = sandboxes(outbound_domain_allowlist=["ok.test"])
    assert resolve(sb, "ok.test") == [host_address()]
    assert connect_from(sb, "ok.test", server.port) == "connected"
    assert resolve(sb, "other.test") == []
    assert connect_from(sb, "other.test", server.port) == "gaierror"
    assert "other.test" not in dns.asked  # refused by the filter: never sent upstream
    assert server.wait_for(1) == 1


def test_a_disallowed_address_is_unreachable_by_ip(sandboxes, dns, server, runner):
    sb = sandboxes(outbound_domain_allowlist=["other.test"])
    destinations = [(host_address(), server.port), ("10.0.2.3", 53)]  # the host, slirp4netns's resolver
    assert connect_all_from(sb, destinations) == [refused(runner)] * 2
    assert server.wait_for(0, timeout=0.5) == 0


def test_cidrs_and_domains_together(sandboxes, dns, server):
    sb = sandboxes(outbound_domain_allowlist=["other.test"], outbound_cidr_allowlist=[f"{host_address()}/32"])
    assert connect_from(sb, host_address(), server.port) == "connected"
    assert resolve(sb, "ok.test") == []
    assert server.wait_for(1) == 1


def test_wildcards_match_subdomains_only(sandboxes, dns, server):
    sb = sandboxes(outbound_domain_allowlist=["*.wild.test"])
    assert connect_from(sb, "a.wild.test", server.port) == "connected"
    assert connect_from(sb, "X.Y.Wild.Test", server.port) == "connected"  # names are case-insensitive
    assert resolve(sb, "wild.test") == []
    assert resolve(sb, "evilwild.test") == []
    assert server.wait_for(2) == 2


def test_star_allows_everything(sandboxes, dns, server):
    sb = sandboxes(outbound_domain_allowlist=["*"])
    assert connect_from(sb, host_address(), server.port) == "connected"
    assert "10.0.2.3" in sb.filesystem.read_text("/etc/resolv.conf")  # names are not filtered at all
    assert server.wait_for(1) == 1


def test_an_allowed_name_keeps_working_when_its_address_changes(sandboxes, dns, server, monkeypatch, runner):
    monkeypatch.setenv("PYSANDBOX_DNS_MIN_TTL", "1")
    dns.records["moving.test"] = [(UNUSED, 1)]
    sb = sandboxes(outbound_domain_allowlist=["moving.test"])
    assert resolve(sb, "moving.test") == [UNUSED]
    assert connect_from(sb, host_address(), server.port) == refused(runner)
    dns.records["moving.test"] = [(host_address(), 1)]
    assert connect_from(sb, "moving.test", server.port) == "connected"  # the new address is allowed at once
    dns.records["moving.test"] = [(UNUSED, 1)]
    assert resolve(sb, "moving.test") == [UNUSED]
    time.sleep(2.5)  # past the old answer's TTL: its address is no longer allowed
    assert connect_from(sb, host_address(), server.port) == refused(runner)
    assert server.wait_for(1) == 1


HOLD = """
import os, socket, sys, time
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
conn.sendall(b"a"); assert conn.recv(1) == b"a"
print("first", flush=True)
while not os.path.exists("/tmp/go"):
    time.sleep(0.02)
try:
    conn.sendall(b"b"); print("second" if conn.recv(1) == b"b" else "closed")
except OSError as exc:
    print(type(exc).__name__)
"""


def first_line(process):
    """The first line of a running process's stdout (its chunks may split it)."""
    line = ""
    for chunk in process.stdout:
        line += chunk
        if "\n" in line:
            return line


@pytest.fixture
def echo():
    """A host TCP server on the host's address that echoes every byte back."""
    import threading

    sock = socket.create_server((host_address(), 0))

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(b) for b in iter(lambda: c.recv(1), b"")],
                             daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop_serving(sock, thread)


def test_changing_the_policy_at_run_time(sandboxes, dns, server, echo, runner):
    sb = sandboxes(outbound_domain_allowlist=["ok.test"])
    held = sb.exec("python3", "-c", HOLD, "ok.test", str(echo))
    assert first_line(held) == "first\n"
    sb._experimental_set_outbound_network_policy(outbound_domain_allowlist=["other.test"])
    sb.filesystem.write_text("", "/tmp/go")
    cut = "TimeoutError" if runner == "gvisor" else "ConnectionResetError"  # gVisor's link filter drops
    assert held.stdout.read() == f"{cut}\n"  # the new policy cuts what it refuses
    assert resolve(sb, "ok.test") == []
    assert connect_from(sb, host_address(), server.port) == refused(runner)
    assert connect_from(sb, "other.test", server.port) == "connected"
    sb._experimental_set_outbound_network_policy(outbound_cidr_allowlist=[f"{host_address()}/32"])
    assert unfiltered_resolver(runner) in sb.filesystem.read_text("/etc/resolv.conf")
    assert connect_from(sb, host_address(), server.port) == "connected"
    asyncio.run(sb._experimental_set_outbound_network_policy.aio(outbound_domain_allowlist=["ok.test"]))
    assert connect_from(sb, "ok.test", server.port) == "connected"
    assert server.wait_for(3) == 3


def test_a_connection_the_new_policy_allows_survives_the_change(sandboxes, dns, echo):
    dns.records["ok.test"] = [(host_address(), 60)]
    sb = sandboxes(outbound_domain_allowlist=["ok.test"])
    held = sb.exec("python3", "-c", HOLD, "ok.test", str(echo))
    assert first_line(held) == "first\n"
    sb._experimental_set_outbound_network_policy(outbound_domain_allowlist=["ok.test", "other.test"])
    sb.filesystem.write_text("", "/tmp/go")
    assert held.stdout.read() == "second\n"


def test_a_policy_opened_at_run_time_allows_everything(sandboxes, dns, server, runner):
    sb = sandboxes(outbound_domain_allowlist=[])
    assert connect_from(sb, host_address(), server.port) == refused(runner)
    sb._experimental_set_outbound_network_policy()
    assert connect_from(sb, host_address(), server.port) == "connected"
    assert unfiltered_resolver(runner) in sb.filesystem.read_text("/etc/resolv.conf")


@pytest.mark.parametrize("kwargs", [
    {"outbound_domain_allowlist": "example.com"},
    {"outbound_domain_allowlist": [1]},
    {"outbound_domain_allowlist": ["bad name"]},
    {"outbound_domain_allowlist": ["a..b"]},
    {"outbound_domain_allowlist": ["*.*.example.com"]},
    {"outbound_domain_allowlist": ["ex*ample.com"]},
    {"outbound_domain_allowlist": ["-lead.example.com"]},
    {"outbound_domain_allowlist": ["x" * 64 + ".com"]},
    {"outbound_domain_allowlist": ["bücher.example"]},
    {"outbound_domain_allowlist": ["ok.test"], "block_network": True},
    {"outbound_domain_allowlist": [], "block_network": True},
])
def test_bad_domain_allowlists_are_rejected_before_anything_starts(app, kwargs):
    before = list(modal.Sandbox.list(app_id=app.app_id))
    with pytest.raises(InvalidError):
        modal.Sandbox.create(app=app, **kwargs)
    assert list(modal.Sandbox.list(app_id=app.app_id)) == before


def test_the_number_of_names_is_bounded(app, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_DOMAIN_ALLOWLIST_MAX", "2")
    with pytest.raises(InvalidError, match="PYSANDBOX_DOMAIN_ALLOWLIST_MAX"):
        modal.Sandbox.create(app=app, outbound_domain_allowlist=["a.test", "b.test", "c.test"])


def test_bad_run_time_policies_are_rejected(sandboxes, dns, runner):
    sb = sandboxes(outbound_domain_allowlist=["ok.test"])
    for kwargs in ({"outbound_domain_allowlist": "ok.test"}, {"outbound_domain_allowlist": ["no way"]},
                   {"outbound_cidr_allowlist": ["not-a-cidr"]}):
        with pytest.raises(InvalidError):
            sb._experimental_set_outbound_network_policy(**kwargs)
    filtered = netplan.FILTER_LINK_DNS if runner == "gvisor" else netplan.FILTER_DNS
    assert filtered in sb.filesystem.read_text("/etc/resolv.conf")  # unchanged
    blocked = sandboxes(block_network=True)
    with pytest.raises(InvalidError, match="no outbound network"):
        blocked._experimental_set_outbound_network_policy(outbound_domain_allowlist=["ok.test"])
