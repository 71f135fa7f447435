"""Pure logic of the network options: validation, the Tunnel shape, the egress ruleset, the fallback."""

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysandbox import network
from pysandbox._core.spec import NETWORK_MODES, SandboxSpec
from pysandbox.exception import InvalidError
from pysandbox.runtime import netplan
from pysandbox.runtime.layout import RunnerInputs


@given(st.integers())
def test_check_port_accepts_exactly_1_to_65535(port):
    if 1 <= port <= 65535:
        assert network.check_port(port, "port") == port
    else:
        with pytest.raises(InvalidError):
            network.check_port(port, "port")


def test_check_cidrs_normalises_and_rejects():
    assert network.check_cidrs(None) is None
    assert network.check_cidrs(["10.1.2.3", "10.0.0.0/8", "2001:db8::/32"]) == (
        "10.1.2.3/32", "10.0.0.0/8", "2001:db8::/32")
    assert network.check_cidrs(["10.1.2.3/8"]) == ("10.0.0.0/8",)
    for bad in (["10.0.0.0/33"], ["example.com"], [None], "10.0.0.0/8"):
        with pytest.raises(InvalidError):
            network.check_cidrs(bad)


def test_tunnel_shape_matches_modal():
    plain = network.tunnel(40000, encrypted=False)
    assert (plain.host, plain.port, plain.tcp_socket) == ("127.0.0.1", 40000, ("127.0.0.1", 40000))
    assert plain.url == "http://127.0.0.1:40000"
    with pytest.raises(InvalidError):
        network.tunnel(40001, encrypted=True).tcp_socket


def test_ruleset_always_closes_the_gateway_and_link_local():
    for allowlist in (None, ("169.254.0.0/16",)):
        rules = netplan.egress_rules(allowlist).splitlines()
        closed = [rules.index(f"    {rule} reject") for rule in
                  ("ip daddr 10.0.2.2", "ip daddr 169.254.0.0/16", "ip6 daddr fe80::/10")]
        # before any rule that accepts a new connection, so an allowlist cannot reopen them
        accepting = [i for i, rule in enumerate(rules) if rule.endswith(" accept") and "lo" not in rule
                     and "established" not in rule]
        assert max(closed) < min(accepting, default=len(rules))
    assert "meta l4proto tcp reject with tcp reset" not in netplan.egress_rules(None)


def test_ruleset_with_an_allowlist_rejects_everything_else():
    rules = netplan.egress_rules(("10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"))
    assert "ip daddr { 10.0.0.0/8, 192.0.2.1/32 } accept" in rules
    assert "ip6 daddr { 2001:db8::/32 } accept" in rules
    assert "ip daddr 10.0.2.3 udp dport 53 accept" in rules
    assert rules.rstrip().endswith("reject\n  }\n}")


def test_ports_and_allowlists_need_the_default_network():
    with pytest.raises(InvalidError):
        SandboxSpec((), network="none", ports=((80, False),))
    with pytest.raises(InvalidError):
        SandboxSpec((), network="none", outbound_cidr_allowlist=["10.0.0.0/8"])


@pytest.mark.parametrize("mode", ["host", "bridge", "", None])
def test_a_sandbox_never_shares_the_hosts_network(mode):
    # No mode keeps the host's network namespace: "host" is refused like any unknown mode,
    # and the runners take only the two there are.
    assert "host" not in NETWORK_MODES
    with pytest.raises(ValueError, match="'network' must be in"):
        SandboxSpec((), network=mode)
    with pytest.raises(ValueError, match="'network' must be in"):
        RunnerInputs(upper="/up", mounts=(), init="/init", workdir="/", network=mode)


def test_without_a_helper_default_falls_back_to_loopback_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(netplan, "tool", lambda name: None)
    monkeypatch.setattr(netplan, "_warned", [])
    with caplog.at_level(logging.WARNING, logger="pysandbox"):
        plans = [netplan.plan(SandboxSpec(()), tmp_path) for _ in range(3)]
    assert [p.mode for p in plans] == ["none"] * 3
    assert len([r for r in caplog.records if "no network" in r.getMessage()]) == 1
    assert not (tmp_path / "net").exists()
