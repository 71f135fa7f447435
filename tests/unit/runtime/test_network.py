"""Pure logic of the network options: validation, the Tunnel shape, the egress ruleset, the fallback."""

import logging
import re
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysandbox import network
from pysandbox._core.spec import NETWORK_MODES, SandboxSpec
from pysandbox.exception import InvalidError
from pysandbox.runtime import gvisor, netplan
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


POLICIES = [(None, None), (("169.254.0.0/16",), None), ((), ("example.com",)), (("169.254.0.0/16",), ())]


@pytest.mark.parametrize("own_stack", [False, True])
@pytest.mark.parametrize(("cidrs", "domains"), POLICIES)
def test_ruleset_always_closes_slirps_network_and_link_local(cidrs, domains, own_stack):
    # slirp's network (its gateway to the host, its resolver relaying any port to the host's resolver)
    # and link-local close before any rule that accepts a new connection, so neither an allowlist nor
    # an allowed name resolving there reopens them; only the resolver's port 53 comes first, and only
    # while names are not filtered. On either hook (the link's drops).
    rules = netplan.egress_rules(cidrs, domains, [8080], own_stack).splitlines()
    verdict = "drop" if own_stack else "reject"
    closed = [rules.index(f"    {rule} {verdict}") for rule in
              ("ip daddr 10.0.2.0/24", "ip daddr 169.254.0.0/16", "ip6 daddr fe80::/10")]
    accepting = [i for i, rule in enumerate(rules) if rule.endswith(" accept") and "lo" not in rule
                 and "established" not in rule and "direction reply" not in rule and " arp " not in rule
                 and " sport " not in rule]
    resolver = [i for i in accepting if rules[i].lstrip().startswith("ip daddr 10.0.2.3 ")]
    assert all(" dport 53 " in rules[i] for i in resolver) and (resolver == []) == (domains is not None)
    assert max(closed) < min(set(accepting) - set(resolver), default=len(rules))


def test_an_open_ruleset_rejects_nothing_else():
    assert "meta l4proto tcp reject with tcp reset" not in netplan.egress_rules(None, None)


def test_ruleset_with_an_allowlist_rejects_everything_else():
    rules = netplan.egress_rules(("10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"), None)
    mark = re.search(r"ct mark set (0x[0-9a-f]{8}) accept", rules).group(1)
    assert f"ip daddr {{ 10.0.0.0/8, 192.0.2.1/32 }} ct mark set {mark} accept" in rules
    assert f"ip6 daddr {{ 2001:db8::/32 }} ct mark set {mark} accept" in rules
    assert f"ip daddr 10.0.2.3 udp dport 53 ct mark set {mark} accept" in rules
    assert f"ct state established,related ct mark {mark} accept" in rules  # only this policy's connections
    assert rules.rstrip().endswith("reject\n  }\n}")


def test_ruleset_with_domains_allows_their_sets_and_not_slirps_resolver():
    rules = netplan.egress_rules((), ("example.com",))
    assert "ip daddr @allow4 ct mark set" in rules and "ip6 daddr @allow6 ct mark set" in rules
    assert "10.0.2.3" not in rules
    assert rules.startswith("table inet pysandbox\ndelete table inet pysandbox\ntable inet pysandbox {")


def test_the_link_ruleset_sits_on_tap0s_egress_and_judges_every_packet():
    rules = netplan.egress_rules(("192.0.2.0/24",), None, [8080, 80], own_stack=True)
    assert rules.startswith("table netdev pysandbox\ndelete table netdev pysandbox\ntable netdev pysandbox {")
    assert 'type filter hook egress device "tap0" priority 0; policy accept;' in rules
    assert "ct " not in rules and "reject" not in rules  # no conntrack at egress, and no reject there
    body = [line.strip() for line in rules.splitlines()]
    # What a frame is and what its sender labelled it agree, before any address is read.
    assert body.index("meta protocol arp ether type arp accept") < body.index("meta protocol != ip drop") < \
        body.index("ether type != ip drop") < body.index("ip daddr 10.0.2.2 tcp sport { 80, 8080 } accept")
    assert body[-4:] == ["ip daddr { 192.0.2.0/24 } accept", "drop", "}", "}"]
    assert "sport" not in netplan.egress_rules(None, None, [], own_stack=True)  # no tunnel, no reply to pass


def test_replies_pass_the_output_hook_only_on_connections_in_through_a_tunnel():
    # Not any connection an outsider starts (a datagram to the host port slirp opened for the sandbox's flow).
    rules = netplan.egress_rules(("192.0.2.0/24",), None, [8080, 80])
    assert "ct direction reply ct original ip saddr 10.0.2.2 tcp sport { 80, 8080 } accept" in rules
    assert "direction reply" not in netplan.egress_rules(("192.0.2.0/24",), None)


def test_each_ruleset_has_its_own_mark():
    marks = {re.search(r"ct mark (0x[0-9a-f]+) accept", netplan.egress_rules(None, None)).group(1)
             for _ in range(20)}
    assert len(marks) > 1 and all(int(m, 16) % 2 == 1 for m in marks)  # never 0, the unmarked


def test_resolv_conf_has_one_length_whoever_it_names():
    assert netplan.resolv_conf(None) == b"nameserver 10.0.2.3".ljust(31) + b"\n"
    assert netplan.resolv_conf(("a.test",)).startswith(b"nameserver 127.0.0.53 ")
    assert len(netplan.resolv_conf(None)) == len(netplan.resolv_conf(()))
    for domains in (None, ("a.test",)):  # the filter's link, once made, stays the resolver
        assert netplan.resolv_conf(domains, filter_link=True) == b"nameserver 10.0.3.2".ljust(31) + b"\n"


def test_the_filters_link_passes_only_queries_to_the_filter_whatever_the_policy():
    for cidrs, domains in POLICIES:
        rules = netplan.egress_rules(cidrs, domains, [8080], own_stack=True, filter_link=True)
        chain = rules[rules.index("  chain dns {"):].splitlines()
        assert [line.strip() for line in chain] == [
            "chain dns {", 'type filter hook egress device "dns0" priority 0; policy drop;',
            "meta protocol arp ether type arp accept", "meta protocol != ip drop", "ether type != ip drop",
            "ip daddr 10.0.3.2 udp dport 53 accept", "}", "}"]  # the table's last chain
        assert "dns0" not in netplan.egress_rules(cidrs, domains, [8080], own_stack=True)


def test_a_sandbox_under_its_own_stack_gets_the_filters_link_only_when_names_are_filtered(tmp_path):
    for domains, linked in ((None, False), ((), True), (("a.test",), True)):
        (tmp_path / "resolv.conf").write_bytes(netplan.resolv_conf(domains))
        args = netplan.NetworkPlan("default", (), tmp_path, (None, domains)).supervisor_args(own_stack=True)
        assert ("--net-dns-link" in args) == linked
        assert ("chain dns" in args[args.index("--net-rules") + 1]) == linked
        assert (tmp_path / "resolv.conf").read_bytes() == netplan.resolv_conf(domains, filter_link=linked)
    args = netplan.NetworkPlan("default", (), tmp_path, (None, ("a.test",))).supervisor_args(own_stack=False)
    assert "--net-dns-link" not in args  # the kernel's own stack reaches the filter on loopback


def test_check_domains_normalises():
    assert network.check_domains(None) is None
    assert network.check_domains([]) == ()
    assert network.check_domains(["Example.COM.", "*.Sub.example.com", "*", "a_b.test", "example.com"]) == (
        "example.com", "*.sub.example.com", "*", "a_b.test")


@pytest.mark.parametrize("bad", ["example.com", ("a.com", 1), ["a b.com"], ["a..com"], ["*.*.a.com"], ["a*.com"],
                                 ["*"  + "a.com"], ["-a.com"], ["a-.com"], ["." ], [""], ["x" * 64 + ".com"],
                                 [".".join(["a" * 60] * 5)], ["bücher.de"], [b"a.com"], {"a.com": 1}])
def test_check_domains_rejects(bad):
    with pytest.raises(InvalidError, match="outbound_domain_allowlist"):
        network.check_domains(bad)


@given(st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True), min_size=1, max_size=5),
       st.booleans())
def test_every_hostname_is_accepted_as_itself(labels, wildcard):
    name = ("*." if wildcard else "") + ".".join(labels)
    assert network.check_domains([name.upper()]) == (name,)


def test_outbound_policy_follows_modal():
    assert network.outbound_policy(None, None) == (None, None)
    assert network.outbound_policy(("10.0.0.0/8",), None) == (("10.0.0.0/8",), None)
    assert network.outbound_policy(None, ("a.test",)) == ((), ("a.test",))  # names only: no networks
    assert network.outbound_policy(("10.0.0.0/8",), ("a.test", "*")) == (None, None)  # "*": everything


def test_dns_upstream(monkeypatch, tmp_path):
    from pysandbox import settings

    for value, expected in [("127.0.0.1:5353", ("127.0.0.1", 5353)), ("10.1.1.1", ("10.1.1.1", 53)),
                            ("[::1]:54", ("::1", 54)), ("fd00::1", ("fd00::1", 53))]:
        monkeypatch.setenv("PYSANDBOX_DNS_UPSTREAM", value)
        assert settings.dns_upstream() == expected
    for bad in ("example.com", "127.0.0.1:0", "127.0.0.1:x", "[::1]:70000"):
        monkeypatch.setenv("PYSANDBOX_DNS_UPSTREAM", bad)
        with pytest.raises(InvalidError, match="PYSANDBOX_DNS_UPSTREAM"):
            settings.dns_upstream()


def test_ports_and_allowlists_need_the_default_network():
    with pytest.raises(InvalidError):
        SandboxSpec((), network="none", ports=((80, False),))
    with pytest.raises(InvalidError):
        SandboxSpec((), network="none", outbound_cidr_allowlist=["10.0.0.0/8"])
    with pytest.raises(InvalidError):
        SandboxSpec((), network="none", outbound_domain_allowlist=["a.test"])


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


def _helper_twice(tmp_path, monkeypatch):
    """Two directories on PATH, each with a script `pysb-test-helper` (not yet executable)."""
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
        (directory / "pysb-test-helper").write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", f"{first}:{second}")
    return first, second


def test_a_helper_found_is_kept_while_it_is_there(tmp_path, monkeypatch):
    first, second = _helper_twice(tmp_path, monkeypatch)
    (first / "pysb-test-helper").chmod(0o755)
    assert netplan.tool("pysb-test-helper") == str(first / "pysb-test-helper")
    (second / "pysb-test-helper").chmod(0o755)  # earlier on PATH is still the first: kept
    assert netplan.tool("pysb-test-helper") == str(first / "pysb-test-helper")
    (first / "pysb-test-helper").unlink()  # gone: searched again
    assert netplan.tool("pysb-test-helper") == str(second / "pysb-test-helper")
    (second / "pysb-test-helper").chmod(0o644)  # no longer executable: not found
    assert netplan.tool("pysb-test-helper") is None
    monkeypatch.setenv("PATH", str(first))  # another PATH: its own search
    assert netplan.tool("pysb-test-helper") is None


def test_a_helper_replaced_by_a_directory_is_searched_for_again(tmp_path, monkeypatch):
    # red12: os.access(X_OK) holds for a directory too; the cache keeps a path only by shutil.which's test.
    first, second = _helper_twice(tmp_path, monkeypatch)
    for directory in (first, second):
        (directory / "pysb-test-helper").chmod(0o755)
    assert netplan.tool("pysb-test-helper") == str(first / "pysb-test-helper")
    (first / "pysb-test-helper").unlink()
    (first / "pysb-test-helper").mkdir()  # a directory now: no program to run there
    assert netplan.tool("pysb-test-helper") == str(second / "pysb-test-helper")


def test_gvisors_default_network_is_refused_on_a_kernel_without_the_egress_hook(monkeypatch):
    monkeypatch.setattr(gvisor, "_kernel", lambda: (5, 15))
    with pytest.raises(InvalidError, match="needs Linux 5.16"):
        gvisor.refuse(SandboxSpec((), runner="gvisor"))
    gvisor.refuse(SandboxSpec((), runner="gvisor", network="none"))  # loopback only needs no filter
    monkeypatch.setattr(gvisor, "_kernel", lambda: (6, 1))
    gvisor.refuse(SandboxSpec((), runner="gvisor"))


@pytest.mark.parametrize("own_stack", [False, True])
def test_the_hosts_own_addresses_close_before_any_allowlist(own_stack):
    rules = [line.strip() for line in netplan.egress_rules(("192.0.2.0/24", "2001:db8::/32"), None, [],
                                                            own_stack).splitlines()]
    verdict = "drop" if own_stack else "reject"
    first_accept = min(i for i, rule in enumerate(rules) if "daddr {" in rule and rule.endswith("accept"))
    assert rules.index(f"ip daddr @host4 {verdict}") < first_accept
    assert rules.index(f"ip6 daddr @host6 {verdict}") < first_accept


# What the supervisor appends to a ruleset and the DNS filter loads on a change (native/supervisor/hostaddr.c):
# the host's addresses and local prefixes, the ones inside another left out (an interval set refuses overlaps).
HOST_ELEMENTS = ("add element {table} host4 {{ 192.0.2.2/32, 203.0.113.0/24 }}; "
                 "add element {table} host6 {{ fd00::2/128 }}; ")
HOST_UPDATE = "flush set {table} host4; flush set {table} host6; " + HOST_ELEMENTS


@pytest.mark.parametrize("own_stack", [False, True])
@pytest.mark.parametrize(("cidrs", "domains"), POLICIES)
def test_every_ruleset_is_one_nft_accepts(cidrs, domains, own_stack):
    # nft's own check, in a network namespace of the test's: a ruleset it refuses fails every create.
    table = "netdev pysandbox" if own_stack else "inet pysandbox"
    filter_link = own_stack and domains is not None
    rules = netplan.egress_rules(cidrs, domains, [8080, 80], own_stack, filter_link=filter_link)
    first = netplan.egress_rules(cidrs, domains, [8080, 80], own_stack, filter_link=filter_link, replace=False)
    for text in (rules, f"{first}\n{HOST_ELEMENTS.format(table=table)}\n",
                 f"{first}\n{HOST_ELEMENTS.format(table=table)}\n{HOST_UPDATE.format(table=table)}\n",
                 f"{first}\n{rules}\n"):  # the first load, then a replacement of it
        checked = subprocess.run(["unshare", "-rn", "nft", "-c", "-f", "-"], input=text, text=True, capture_output=True)
        assert checked.returncode == 0, checked.stderr
