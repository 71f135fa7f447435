"""Attack 36: the DNS filter of a sandbox with an outbound_domain_allowlist.

Code in the sandbox sends the filter (127.0.0.53:53, on the host side) malformed, oversized and
flooding queries, names crafted to pass a wildcard or an exact entry they are not, queries over TCP
and to other resolvers, and connects to disallowed addresses directly; an allowed name's answers
try to overflow the filter's address table. The filter must keep answering allowed names, never
ask the upstream (a DNS server the test runs on the host's loopback) about anything else, stay
within its bounds, run with the fixed host environment and die with the supervisor.
"""

import json
import os
import random
import signal
import socket
import struct
import time

import psutil
import pytest

from pysandbox.settings import HOST_ENV

from ..dnsserver import DNSServer
from ..listeners import Listener, connect_from, host_address, refused

pytestmark = pytest.mark.rootless

# Sends each hex payload to ADDRESS:PORT over UDP; the answer's rcode and answer count, or "none".
EXCHANGE = r"""
import json, socket, sys
address, port, payloads = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
results = []
for payload in payloads:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(float(sys.argv[4]))
    try:
        s.sendto(bytes.fromhex(payload), (address, port))
        answer = s.recv(65536)
        results.append([answer[3] & 15, int.from_bytes(answer[6:8], "big")])
    except OSError as exc:
        results.append("none" if isinstance(exc, socket.timeout) else type(exc).__name__)
    s.close()
print(json.dumps(results))
"""

FLOOD = r"""
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
query = bytes.fromhex(sys.argv[1])
end = time.monotonic() + 1
sent = 0
while time.monotonic() < end:
    try:
        s.sendto(os.urandom(2) + query[2:], ("127.0.0.53", 53))
        sent += 1
    except BlockingIOError:
        pass
print(sent)
"""


def query(labels, qtype=1, qclass=1, flags=0x0100, counts=(1, 0, 0, 0), extra=b""):
    name = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return (struct.pack("!HHHHHH", random.getrandbits(16), flags, *counts) + name +
            struct.pack("!HH", qtype, qclass) + extra)


def exchange(sb, payloads, address="127.0.0.53", port=53, wait=0.5):
    p = sb.exec("python3", "-c", EXCHANGE, address, str(port), json.dumps([x.hex() for x in payloads]), str(wait))
    assert p.wait() == 0, p.stderr.read()
    return json.loads(p.stdout.read())


@pytest.fixture
def dns(monkeypatch):
    server = DNSServer()
    server.records["ok.test"] = [(host_address(), 60)]
    server.records["a.wild.test"] = [(host_address(), 60)]
    monkeypatch.setenv("PYSANDBOX_DNS_UPSTREAM", server.address)
    yield server
    server.close()


OK = query([b"ok", b"test"])


def test_malformed_queries_are_dropped_and_the_filter_keeps_answering(sandboxes, dns):
    sb = sandboxes(outbound_domain_allowlist=["ok.test"])
    malformed = [
        b"", b"\0" * 11, struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0),  # no question
        OK[:12] + b"\xc0\x0c" + OK[-4:],  # a compression pointer to itself
        OK[:12] + b"\x40" + b"a" * 64 + b"\0" + OK[-4:],  # a 64-byte label
        query([b"a" * 63] * 5),  # a 320-byte name
        query([b"ok", b"test"], counts=(2, 0, 0, 0)), query([b"ok", b"test"], counts=(0, 0, 0, 0)),
        query([b"ok", b"test"], counts=(1, 1, 0, 0)), query([b"ok", b"test"], counts=(1, 0, 0, 5)),
        query([b"ok", b"test"], flags=0x8180),  # a response
        query([b"ok", b"test"], flags=0x1100),  # opcode 2 (status)
        OK[:-3],  # truncated type and class
        query([b"ok", b"test"], extra=b"\0" * 4000),  # over 512 bytes
        *[os.urandom(random.randrange(1, 600)) for _ in range(20)],
    ]
    results = exchange(sb, malformed, wait=0.2)
    assert results == ["none"] * len(malformed)
    assert dns.asked == []
    assert exchange(sb, [OK]) == [[0, 1]]
    assert dns.asked == ["ok.test"]


def test_names_crafted_to_pass_for_allowed_ones_are_nxdomain(sandboxes, dns):
    sb = sandboxes(outbound_domain_allowlist=["ok.test", "*.wild.test"])
    crafted = [
        [b"ok.test"],  # one label holding a dot
        [b"a.wild", b"test"], [b"x", b"a.wild.test"],
        [b"ok", b"test\0"], [b"ok\0", b"test"], [b"ok", b"test", b"evil"], [b"evilok", b"test"],
        [b"wild", b"test"],  # the wildcard's own suffix
        [b"evilwild", b"test"], [b"wild", b"test", b"evil"], [b"*", b"wild", b"test"], [b"ok ", b"test"],
    ]
    assert exchange(sb, [query(labels) for labels in crafted]) == [[3, 0]] * len(crafted)
    assert exchange(sb, [query([b"ok", b"test"], qclass=3)]) == [[3, 0]]  # CHAOS, not IN
    assert dns.asked == []
    assert exchange(sb, [query([b"OK", b"Test"]), query([b"a", b"WILD", b"test"])]) == [[0, 1], [0, 1]]


def test_other_resolvers_tcp_and_direct_addresses_are_unreachable(sandboxes, dns):
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a resolver on the host's address
    other.bind((host_address(), 0))
    other.settimeout(0.2)
    listener = Listener(socket.AF_INET, (host_address(), 0))
    try:
        sb = sandboxes(outbound_domain_allowlist=["other.test"])
        results = exchange(sb, [OK], address="10.0.2.3") + exchange(sb, [OK], address=host_address(),
                                                                    port=other.getsockname()[1])
        assert all(result != [0, 1] for result in results), results
        with pytest.raises(socket.timeout):
            other.recv(512)
        assert connect_from(sb, "127.0.0.53", 53) == "ConnectionRefusedError"  # no DNS over TCP
        assert connect_from(sb, "10.0.2.3", 53) == "ConnectionRefusedError"
        assert connect_from(sb, host_address(), listener.port) == "ConnectionRefusedError"
        assert connect_from(sb, "169.254.169.254", 80) == "ConnectionRefusedError"
        assert listener.wait_for(0, timeout=0.2) == 0 and dns.asked == []
    finally:
        other.close()
        listener.close()


def test_a_flood_is_rate_limited(sandboxes, dns, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_DNS_QPS", "50")
    sb = sandboxes(outbound_domain_allowlist=["ok.test"])
    start = time.monotonic()
    p = sb.exec("python3", "-c", FLOOD, OK.hex())
    assert p.wait() == 0
    sent = int(p.stdout.read())
    elapsed = time.monotonic() - start
    assert sent > 1000
    assert len(dns.asked) <= 50 * (elapsed + 1)  # the burst, then 50 a second
    time.sleep(1.1)  # the bucket refills
    assert exchange(sb, [OK]) == [[0, 1]]


def test_answers_cannot_overflow_the_address_table(sandboxes, dns, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_DNS_ADDRESSES_MAX", "40")
    dns.records["many.test"] = [(f"10.99.0.{i}", 60) for i in range(100)]
    dns.records["more.test"] = [(f"10.99.1.{i}", 60) for i in range(100)]
    sb = sandboxes(outbound_domain_allowlist=["many.test", "more.test", "ok.test"])
    many, more = query([b"many", b"test"]), query([b"more", b"test"])
    assert exchange(sb, [many]) == [[0, 100]]  # 32 of them allowed
    assert exchange(sb, [more]) == [[2, 0]]  # SERVFAIL: 8 places left for 32 addresses
    assert exchange(sb, [OK]) == [[0, 1]]
    log = (sb._dir / "supervisor.log").read_text()
    assert log.count("maximum of 40 addresses") == 1


def _filter(sb):
    supervisor = psutil.Process(sb._record.supervisor.pid)
    found = [p for p in supervisor.children() if p.exe() == supervisor.exe()]
    assert len(found) == 1
    return found[0]


def test_the_filter_has_the_host_environment_and_dies_with_the_supervisor(sandboxes, dns, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent.so")  # never reaches a host process
    sb = sandboxes("sleep", "100", outbound_domain_allowlist=["ok.test"])
    assert exchange(sb, [OK]) == [[0, 1]]
    dnsfilter = _filter(sb)
    environ = open(f"/proc/{dnsfilter.pid}/environ", "rb").read().split(b"\0")
    assert sorted(e.decode() for e in environ if e) == sorted(f"{k}={v}" for k, v in HOST_ENV.items())
    os.kill(sb._record.supervisor.pid, signal.SIGKILL)
    dnsfilter.wait(timeout=10)  # its parent-death signal
    sb.wait(raise_on_termination=False)


@pytest.mark.gvisor
def test_every_default_network_sandbox_has_one_filter(sb):
    # It waits, unused, for a policy change; the sandbox's names go to slirp4netns meanwhile.
    assert "10.0.2.3" in sb.exec("cat", "/etc/resolv.conf").stdout.read()  # once this answers, the network is up
    assert _filter(sb).status() != psutil.STATUS_ZOMBIE


def test_an_allowed_name_resolving_into_slirps_network_opens_nothing(sandboxes, dns):
    # Found by the red team: an allowed name answered with 10.0.2.3 put slirp's resolver in the allowed
    # set, and through it every name resolved (an exfiltration channel), and slirp relays any port of
    # 10.0.2.3 to the host resolver's address. Rebinding to the gateway or the metadata address too.
    dns.records.update({"dns.test": [("10.0.2.3", 60)], "gw.test": [("10.0.2.2", 60)],
                        "meta.test": [("169.254.169.254", 60)]})
    sb = sandboxes(outbound_domain_allowlist=["dns.test", "gw.test", "meta.test"])
    assert exchange(sb, [query([b"dns", b"test"]), query([b"gw", b"test"]), query([b"meta", b"test"])]) == [[0, 1]] * 3
    assert exchange(sb, [query([b"exfil-secret", b"example", b"com"])], address="10.0.2.3") == ["PermissionError"]
    for address, port in (("10.0.2.3", 53), ("10.0.2.3", 80), ("10.0.2.2", 80), ("169.254.169.254", 80)):
        assert connect_from(sb, address, port) == "ConnectionRefusedError", (address, port)
    assert "exfil-secret.example.com" not in dns.asked


@pytest.mark.gvisor
def test_slirps_resolver_answers_only_on_port_53_without_a_domain_policy(sandboxes, runner):
    sb = sandboxes()
    assert connect_from(sb, "10.0.2.3", 80) == refused(runner)
    assert connect_from(sb, "10.0.2.3", 8080) == refused(runner)
