"""A spare loads the default network's egress filter ahead (native/supervisor/spare.h), with the host's
addresses in its sets as they were then: a sandbox may claim it long after. The filter serves a claim only
if it is the one the claim asks for and the host's addresses have not changed since; else the supervisor
makes the network namespace again and loads the claim's filter, as without a spare.

Attacks: the host gains an address while the spare waits (its sets lack it); a sandbox with an allowlist
after one without (the spare's filter lets more through than the allowlist); the reverse (a default sandbox
must not get the allowlist's filter); block_network after the default network (no filter of another's in its
namespace)."""

import os
import shutil
import socket
import subprocess

import psutil
import pytest

from pysandbox.runtime import spare

from ..listeners import Listener, connect_from, host_address
from ..procs import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nsenter") is None,
                                reason="changes the host's addresses and enters a sandbox's namespace (root)")

CHANGED = "an address of the host changed after the spare loaded the egress filter"


@pytest.fixture
def service():
    listener = Listener(socket.AF_INET, ("0.0.0.0", 0))
    yield listener
    listener.close()


@pytest.fixture(autouse=True)
def spares_on(monkeypatch):
    monkeypatch.delenv("PYSANDBOX_WARM_SPARE", raising=False)


def _log(sb):
    return (sb._dir / "supervisor.log").read_text()


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _ruleset(sb):
    """The nftables ruleset of the sandbox's network namespace, read from the host."""
    sb.exec("true").wait()  # init runs
    inits = [p for p in psutil.Process(sb._record.supervisor.pid).children(recursive=True)
             if p.name() == "init"]
    assert inits, "no init among the supervisor's descendants"
    found = subprocess.run(["nsenter", "-t", str(inits[0].pid), "-n", "nft", "list", "ruleset"],
                           capture_output=True, text=True, check=True)
    return found.stdout


def _watching_host(pid):
    """Whether the process holds two NETLINK_ROUTE sockets: a spare's host watch, opened before it reads the
    host's addresses for its filter's sets (every change after that is queued on it)."""
    with open("/proc/net/netlink") as f:
        route = {line.split()[-1] for line in f.read().splitlines()[1:] if line.split()[1] == "0"}
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            held.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return sum(link.startswith("socket:[") and link[8:-1] in route for link in held) == 2


def _spare_argv():
    """The waiting spare's command line (empty for a moment after its exec: CI H)."""
    process = psutil.Process(spare._waiting.pid)
    assert eventually(lambda: process.cmdline() != [])
    return process.cmdline()


def _two_alike(sandboxes, **kwargs):
    """Two creates in a row with `kwargs`: the spare the second starts loads their network's filter ahead."""
    sandboxes(**kwargs)
    sandboxes(**kwargs)
    assert spare._waiting is not None and "--net-rules" in _spare_argv()


def test_an_address_the_host_gained_while_the_spare_waited_is_refused(sandboxes, service, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_NETWORK_REACHES_HOST")
    _two_alike(sandboxes)
    assert eventually(lambda: _watching_host(spare._waiting.pid))  # its sets hold the host's addresses of now
    late = "198.51.100.79"  # TEST-NET-2
    _ip("addr", "add", f"{late}/32", "dev", "lo")
    try:
        sb = sandboxes()
        ruleset = _ruleset(sb)
        outcome = connect_from(sb, late, service.port)
    finally:
        _ip("addr", "del", f"{late}/32", "dev", "lo", check=False)
    assert CHANGED in _log(sb)  # the spare's filter was not used
    assert late in ruleset  # in the sets from the first load on
    assert service.wait_for(1, timeout=2) == 0, outcome


def test_the_spare_filter_serves_only_the_policy_it_was_loaded_for(sandboxes, service):
    # The test session lets sandboxes reach the host (tests/conftest.py): the host's service is reachable under
    # the default policy, and not under an allowlist that leaves the host's address out.
    address = host_address()
    _two_alike(sandboxes)  # the spare loads the default policy's filter
    strict = sandboxes(outbound_cidr_allowlist=["203.0.113.0/24"])
    assert connect_from(strict, address, service.port) != "connected"
    assert service.wait_for(1, timeout=2) == 0
    _two_alike(sandboxes, outbound_cidr_allowlist=["203.0.113.0/24"])  # now the allowlist's
    default = sandboxes()
    assert connect_from(default, address, service.port) == "connected"
    assert "203.0.113.0/24" not in _ruleset(default)
    assert CHANGED not in _log(strict) + _log(default)


def test_a_sandbox_without_network_gets_a_namespace_with_no_filter(sandboxes):
    _two_alike(sandboxes)  # the spare loads the default policy's filter
    assert _ruleset(sandboxes(block_network=True)).strip() == ""


def test_a_caller_that_alternates_networks_loads_no_filter_ahead(sandboxes):
    # Each load would be wasted, and the claim would make its network namespace again.
    for kwargs in ({}, {"block_network": True}, {}):
        sandboxes(**kwargs)
    assert "--net-rules" not in _spare_argv()
