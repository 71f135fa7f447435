"""Attack 12 of the security matrix: network egress from inside a sandbox.

Code in the sandbox tries to reach, from the default network and from
block_network=True: a service the test runs on the host's 127.0.0.1 (directly
and through slirp4netns's gateway 10.0.2.2), an abstract Unix socket the test
binds on the host, path Unix sockets (docker.sock, D-Bus, one the test makes
in the host's /tmp), and the cloud metadata address 169.254.169.254 (served, in
a network namespace the test makes, by a server the sandbox must not reach).
Each attempt must fail with the exact error, and no host server may see a
connection.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from ..listeners import Listener, host_address, refused

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

ATTACK = r"""
import json, socket, sys
results = []
for target in json.loads(sys.argv[1]):
    if isinstance(target, list):
        sock, address = socket.socket(socket.AF_INET, socket.SOCK_STREAM), tuple(target)
    else:
        sock, address = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), target.replace("@", "\0", 1)
    sock.settimeout(5)
    try:
        sock.connect(address)
        results.append("connected")
    except OSError as exc:
        results.append(type(exc).__name__)
    finally:
        sock.close()
print(json.dumps(results))
"""


def attack(sb, targets):
    """The outcome of a connection from inside the sandbox to each target ([host, port] or a Unix path, @abstract)."""
    p = sb.exec("python3", "-c", ATTACK, json.dumps(targets))
    assert p.wait() == 0, p.stderr.read()
    return json.loads(p.stdout.read())


@pytest.fixture
def listeners(tmp_path):
    made = []

    def make(family, address):
        made.append(Listener(family, address))
        return made[-1]

    yield make
    for listener in made:
        listener.close()


@pytest.mark.parametrize("block_network", [False, True])
def test_host_loopback_service_is_unreachable(sandboxes, listeners, block_network, runner):
    sb = sandboxes(block_network=block_network)
    service = listeners(socket.AF_INET, ("127.0.0.1", 0))
    port = service.address[1]
    outcomes = attack(sb, [["127.0.0.1", port], ["10.0.2.2", port], [host_address(), port]])
    # Its own loopback has nothing there; the gateway to the host's loopback is closed (by the filter);
    # the host's own address has no such service (it listens on loopback only).
    expected = ["ConnectionRefusedError", refused(runner), "ConnectionRefusedError"] if not block_network else \
        ["ConnectionRefusedError", "OSError", "OSError"]
    assert outcomes == expected
    assert service.accepted == 0


@pytest.mark.parametrize("allowlist", [None, "host"])
def test_host_wildcard_service_is_unreachable_through_the_hosts_own_address(sandboxes, listeners, monkeypatch,
                                                                            allowlist):
    # A host service bound to the wildcard address is a loopback service too (it answers on 127.0.0.1),
    # and most are bound so (sshd, databases, dev servers). slirp4netns connects to the host's own
    # addresses from the host's namespace, so the filter refuses them, as it does the gateway, whatever
    # an allowlist says (found by a red team; the tests elsewhere opt in: tests/conftest.py).
    monkeypatch.delenv("PYSANDBOX_NETWORK_REACHES_HOST")
    address = host_address()
    sb = sandboxes(**({} if allowlist is None else {"outbound_cidr_allowlist": [f"{address}/32"]}))
    service = listeners(socket.AF_INET, ("0.0.0.0", 0))
    outcome = attack(sb, [[address, service.address[1]]])
    assert service.wait_for(1, timeout=2) == 0, outcome


def test_the_first_program_is_filtered_from_its_first_packet(sandboxes, listeners, monkeypatch, runner):
    # The supervisor starts every network helper (nft, slirp4netns, the DNS filter) before it waits for any,
    # while the runner still works (native/supervisor/netns.c): init is released once all are ready, the
    # filter loaded. The entrypoint, the first program sandbox code runs, connects before anything else:
    # to a host service that slirp4netns would reach (the host's own address, wildcard-bound) and that only
    # the filter refuses. Refused, not unreachable: tap0 and its route were already up, the filter already
    # loaded (without it: "connected"; without the route: OSError).
    monkeypatch.delenv("PYSANDBOX_NETWORK_REACHES_HOST")
    service = listeners(socket.AF_INET, ("0.0.0.0", 0))
    targets = [[host_address(), service.address[1]], ["169.254.169.254", 80]]
    sb = sandboxes("python3", "-S", "-c", ATTACK, json.dumps(targets))
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 0, sb.stderr.read()
    assert json.loads(sb.stdout.read()) == [refused(runner), refused(runner)]
    assert service.wait_for(1, timeout=2) == 0


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="adds a route to the host (root, ip)")
def test_a_host_local_route_wider_than_one_address_is_unreachable(sandboxes, listeners, monkeypatch):
    # Red team finding (fixed): host_addresses read /proc/net/fib_trie's "/32 host LOCAL" entries only. A local
    # route over a prefix (AnyIP: `ip route add local 198.18.77.0/24 dev lo`, as some proxies and load
    # balancers set up) makes every address in it the host's own, listed as "/24 host LOCAL": none of them
    # is refused, and slirp4netns reaches the host's wildcard-bound services through any of them.
    monkeypatch.delenv("PYSANDBOX_NETWORK_REACHES_HOST")
    prefix = "198.18.77.0/24"  # benchmarking space, which no other test uses
    subprocess.run(["ip", "route", "add", "local", prefix, "dev", "lo", "table", "local"], check=True)
    try:
        sb = sandboxes()
        service = listeners(socket.AF_INET, ("0.0.0.0", 0))
        outcome = attack(sb, [["198.18.77.9", service.address[1]]])
    finally:
        subprocess.run(["ip", "route", "del", "local", prefix, "dev", "lo", "table", "local"], check=True)
    assert service.wait_for(1, timeout=2) == 0, outcome


def _filter_sets(sb):
    """The sets of the sandbox's egress filter, as nft lists them, read in its network namespace (its DNS
    filter's, which every runner's sandbox with the default network has)."""
    for child in psutil.Process(sb._record.supervisor.pid).children(recursive=True):
        listed = subprocess.run(["nsenter", "-t", str(child.pid), "-n", "nft", "list", "sets"], capture_output=True,
                                text=True)
        if "host4" in listed.stdout:
            return listed.stdout
    return ""


def _until_refused(sb, present=(), absent=()):
    # The sandbox's DNS filter updates the sets a few ms after the host's addresses change (the window
    # docs/SECURITY.md states): what is attacked is the filter once updated.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sets = _filter_sets(sb)
        if all(a in sets for a in present) and not any(f" {a}" in sets for a in absent):
            return sets
        time.sleep(0.01)
    raise AssertionError(f"the sandbox's host sets did not follow the host's addresses: {_filter_sets(sb)}")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="adds an address to the host (root, ip)")
@pytest.mark.parametrize("policy_changed", [False, True])
def test_a_host_address_added_after_the_sandbox_started_is_unreachable(sandboxes, listeners, monkeypatch,
                                                                       policy_changed):
    # red4 finding (fixed): the refused host addresses were read once, when the sandbox started. An address
    # the host gains later (DHCP, a VPN, docker0 when docker starts, a cloud's secondary address) was not
    # refused: through it slirp4netns reaches the host's wildcard-bound services from the host's namespace.
    # A policy changed afterwards (its allowlist naming the address) reloads the ruleset: the sets keep it.
    monkeypatch.delenv("PYSANDBOX_NETWORK_REACHES_HOST")
    sb = sandboxes()
    service = listeners(socket.AF_INET, ("0.0.0.0", 0))
    late = "198.51.100.7"  # TEST-NET-2, on the host's loopback device: one of its own addresses
    subprocess.run(["ip", "addr", "add", f"{late}/32", "dev", "lo"], check=True)
    try:
        _until_refused(sb, present=[late])
        if policy_changed:
            sb._experimental_set_outbound_network_policy(outbound_cidr_allowlist=[f"{late}/32"])
            assert late in _filter_sets(sb)
        outcome = attack(sb, [[late, service.address[1]]])
    finally:
        subprocess.run(["ip", "addr", "del", f"{late}/32", "dev", "lo"], check=True)
    assert service.wait_for(1, timeout=2) == 0, outcome


def _supervisors(sb):
    """The supervisor and its forks (the DNS filter among them), each with its descriptors, and its other
    children on the host's side (slirp4netns, the DNS filter's nft) by name."""
    supervisor = psutil.Process(sb._record.supervisor.pid)
    named = []
    for child in supervisor.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a sandbox process that just ended
            named.append((child, child.name()))
    ours = [supervisor, *(c for c, name in named if name == supervisor.name())]
    return {p.pid: p.num_fds() for p in ours}, sorted(name for _, name in named if name in ("slirp4netns", "nft"))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="adds addresses to the host (root, ip)")
def test_a_burst_of_host_address_changes_neither_stalls_nor_leaks(sandboxes, listeners, monkeypatch, tmp_path):
    # Fault injection: the host gains 400 addresses and a local route at once, then loses them, twice. The
    # sandbox's DNS filter coalesces the notifications (and their queue's overflow) into a few updates: the
    # sandbox goes on running, its sets follow the host's, and the second round leaves the same processes
    # with the same descriptors as the first (nothing leaks per update).
    monkeypatch.delenv("PYSANDBOX_NETWORK_REACHES_HOST")
    sb = sandboxes()
    service = listeners(socket.AF_INET, ("0.0.0.0", 0))
    burst = [f"198.18.{i // 200}.{i % 200 + 1}" for i in range(400)]  # benchmarking space
    gained, lost = tmp_path / "gained", tmp_path / "lost"
    gained.write_text("".join(f"addr add {a}/32 dev lo\n" for a in burst) + "route add local 198.19.9.0/24 dev lo "
                      "table local\n")
    lost.write_text(gained.read_text().replace("addr add", "addr del").replace("route add", "route del"))
    watched = [burst[0], burst[-1], "198.19.9.0/24"]
    rounds = []
    for _ in range(2):
        subprocess.run(["ip", "-batch", str(gained)], check=True)
        try:
            _until_refused(sb, present=watched)
            outcome = attack(sb, [[burst[-1], service.address[1]], ["198.19.9.77", service.address[1]]])
        finally:
            subprocess.run(["ip", "-batch", str(lost)], check=True)
        assert service.wait_for(1, timeout=2) == 0, outcome
        _until_refused(sb, absent=watched)
        rounds.append(_supervisors(sb))
    assert rounds[0] == rounds[1]
    assert sb.exec("true").wait() == 0
    log = (sb._dir / "supervisor.log").read_text()
    assert "host's addresses" not in log, log  # no failed update, no dump over its bound


@pytest.mark.parametrize("block_network", [False, True])
def test_host_abstract_unix_socket_is_unreachable(sandboxes, listeners, block_network):
    sb = sandboxes(block_network=block_network)
    name = f"pysandbox-attack-{uuid.uuid4().hex}"
    service = listeners(socket.AF_UNIX, "\0" + name)
    assert attack(sb, ["@" + name]) == ["ConnectionRefusedError"]  # abstract names live in the network namespace
    assert service.accepted == 0


RECONFIGURE = r"""
import errno, fcntl, os, socket, struct
names = [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", 0))  # SIOCSIFFLAGS: loopback down
    outcome = "changed"
except OSError as exc:
    outcome = errno.errorcode[exc.errno]
print(os.readlink("/proc/self/ns/net"), ",".join(sorted(names)), outcome)
"""


@pytest.mark.parametrize("block_network", [False, True])
def test_the_network_namespace_is_the_sandboxs_own_and_fixed(sandboxes, block_network, runner):
    # The supervisor's runner child makes it before the runner starts, which makes none
    # (native/supervisor/netns.h): never the host's whatever the runner, with nothing but
    # loopback and slirp4netns's tap0, which sandbox root cannot reconfigure (under gVisor its
    # netstack's copy of them, which has no such ioctl).
    sb = sandboxes(block_network=block_network)
    p = sb.exec("python3", "-c", RECONFIGURE)
    assert p.wait() == 0, p.stderr.read()
    namespace, interfaces, outcome = p.stdout.read().split()
    assert namespace.startswith("net:[") and namespace != os.readlink("/proc/self/ns/net")
    assert interfaces == ("lo" if block_network else "lo,tap0")
    assert outcome == ("ENOTTY" if runner == "gvisor" else "EPERM")
    assert sb.exec("python3", "-c", "import socket; socket.create_server(('127.0.0.1', 0))").wait() == 0  # lo is up


@pytest.mark.gvisor
def test_host_path_unix_sockets_are_not_there(sb, listeners):
    service = listeners(socket.AF_UNIX, f"/tmp/pysandbox-attack-{uuid.uuid4().hex}.sock")
    targets = [service.address, "/var/run/docker.sock", "/run/docker.sock", "/run/dbus/system_bus_socket",
               f"/run/user/{os.getuid()}/bus"]
    assert attack(sb, targets) == ["FileNotFoundError"] * len(targets)
    assert service.accepted == 0


# The metadata address, served in a network namespace the test makes (so that,
# unlike on this host, a connection to it would succeed if nothing stopped it).
METADATA_DRIVER = r"""
import json, socket, sys, threading
import pysandbox as modal
sys.path.insert(0, sys.argv[1])
from tests.listeners import Listener
from tests.security.test_12_network_egress import attack

port = int(sys.argv[2])
metadata = Listener(socket.AF_INET, ("169.254.169.254", port))
control = Listener(socket.AF_INET, ("198.51.100.7", port))
app = modal.App.lookup("pysandbox-tests", create_if_missing=True)
outcomes = {}
for label, kwargs in [("default", {}), ("allowlisted", {"outbound_cidr_allowlist": ["169.254.0.0/16", "198.51.100.0/24"]})]:
    sb = modal.Sandbox.create(app=app, **kwargs)
    try:
        outcomes[label] = attack(sb, [["169.254.169.254", port], ["198.51.100.7", port]])
    finally:
        sb.terminate(wait=True)
print(json.dumps({"outcomes": outcomes, "control": control.wait_for(2), "metadata": metadata.accepted}))
"""
NETNS_SETUP = "ip link set lo up && ip addr add 169.254.169.254/32 dev lo && ip addr add 198.51.100.7/32 dev lo"


def in_own_network_namespace(argv):
    """argv run in a new network namespace, with the same identity as this test."""
    if os.geteuid() == 0:
        return ["unshare", "--net", "--", "sh", "-c", f'{NETNS_SETUP} && exec "$@"', "sh", *argv]
    # Unprivileged: a user namespace to configure the network in, then one that maps us back to our uid.
    remap = ["unshare", f"--map-user={os.getuid()}", f"--map-group={os.getgid()}", "--"]
    return ["unshare", "--user", "--map-root-user", "--net", "--", "sh", "-c", f'{NETNS_SETUP} && exec "$@"', "sh",
            *remap, *argv]


@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("ip") is None, reason="needs unshare and ip")
def test_cloud_metadata_address_is_unreachable_even_when_allowlisted(runner):
    port = "80" if os.geteuid() == 0 else "8080"  # an unprivileged test cannot bind port 80
    argv = [sys.executable, "-c", METADATA_DRIVER, str(Path(__file__).parents[2]), port]
    out = subprocess.run(in_own_network_namespace(argv), capture_output=True, text=True, timeout=120)
    if runner == "gvisor" and os.geteuid() != 0:  # a namespace of one id: gVisor refuses such a caller
        assert out.returncode != 0 and "needs root here, or a subordinate id range" in out.stderr, out.stderr
        return
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    # The control address in the same namespace is reachable, so the refusal is the sandbox's filter.
    assert result["outcomes"] == {"default": [refused(runner), "connected"],
                                  "allowlisted": [refused(runner), "connected"]}
    assert result == {**result, "metadata": 0, "control": 2}


def test_sandbox_cannot_lift_its_egress_filter(sb, listeners, runner):
    # Under gVisor the filter is the host kernel's, out of its reach: its netlink has no nftables, and its
    # netstack refuses sandbox root (no CAP_NET_ADMIN) a change of its copy of the links and routes.
    gvisor = runner == "gvisor"
    service = listeners(socket.AF_INET, ("127.0.0.1", 0))
    for command, error in ((["nft", "flush", "ruleset"], "Protocol not supported" if gvisor else None),
                           (["ip", "route", "replace", "default", "dev", "lo"], "Permission denied" if gvisor else None),
                           (["ip", "link", "set", "tap0", "down"], "Permission denied" if gvisor else None)):
        p = sb.exec(*command)
        assert p.wait() != 0, command
        assert (error or "Operation not permitted") in p.stderr.read(), command
    assert attack(sb, [["10.0.2.2", service.address[1]]]) == [refused(runner)]
    assert service.accepted == 0


# gVisor's netstack sends its frames on tap0 through AF_PACKET, past the output hook: its filter sits on tap0's
# netdev egress hook (netplan._link_hook). Here, on this kernel, in a namespace of the test's own: frames sent
# as gVisor sends them and as an attacker with a packet socket would (PACKET_QDISC_BYPASS, a false label), read
# back from the tap's other end. Only those to the allowlisted network come out.
RAW_FRAMES = r"""
import errno, fcntl, json, os, select, socket, struct, subprocess, sys
sys.path.insert(0, sys.argv[1])
from pysandbox.runtime import netplan
tap = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
fcntl.ioctl(tap, 0x400454CA, struct.pack("16sH14x", b"tap0", 0x0002 | 0x1000))  # TUNSETIFF: IFF_TAP | IFF_NO_PI
subprocess.run(["ip", "link", "set", "tap0", "up"], check=True)
subprocess.run(["nft", "-f", "-"], input=netplan.egress_rules(("198.51.100.0/24",), None, own_stack=True), text=True,
               check=True)

def frame(destination, marker):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(marker), 0, 0, 64, 17, 0, socket.inet_aton("10.0.2.100"),
                     socket.inet_aton(destination))
    return b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + marker

sent = []
for bypass in (0, 1):
    for label in (0x0003, 0x0800, 0x0806, 0x86DD):  # ETH_P_ALL (gVisor's), IPv4, a false ARP, a false IPv6
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        sock.setsockopt(263, 20, bypass)  # SOL_PACKET, PACKET_QDISC_BYPASS
        for destination in ("198.51.100.7", "169.254.169.254", "10.0.2.2", "192.0.2.1"):
            marker = f"{destination}/{label:#06x}/{bypass}".encode()
            sent.append(marker)
            try:
                sock.sendto(frame(destination, marker), ("tap0", label))
            except OSError as exc:  # ENOBUFS: the egress hook dropped it (NET_XMIT_DROP)
                assert exc.errno == errno.ENOBUFS, exc
        sock.close()
came = []
while select.select([tap], [], [], 0.5)[0]:
    data = os.read(tap, 65536)
    came += [marker.decode() for marker in sent if data.endswith(marker)]
print(json.dumps(sorted(came)))
"""


@pytest.mark.gvisor(only=True)
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nft") is None,
                    reason="root, unshare and nft: the filter gVisor's sandboxes have, loaded here")
def test_the_link_filter_holds_for_every_frame_a_packet_socket_sends():
    argv = ["unshare", "--net", "--", sys.executable, "-c", RAW_FRAMES, str(Path(__file__).parents[2])]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # Only the allowlisted destination, and only in frames whose label says what they are.
    assert json.loads(out.stdout) == sorted(f"198.51.100.7/{label:#06x}/{bypass}"
                                            for bypass in (0, 1) for label in (0x0003, 0x0800))


# In a network namespace of the test's own: A (allowlisted) and B (not) are addresses on its loopback, the
# outside world to the sandbox's slirp4netns. The sandbox sends a datagram to A; slirp4netns sends it from a
# host UDP socket on the wildcard address, and delivers to the sandbox whatever anyone sends to that socket,
# from the sender's own address. B knocks on it; the sandbox answers B.
KNOCK = r"""
import os, socket, subprocess, sys
sys.path.insert(0, sys.argv[1])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
A, B = "203.0.113.1", "203.0.113.2"
for address in (A, B):
    subprocess.run(["ip", "addr", "add", address + "/32", "dev", "lo"], check=True)
import pysandbox as modal
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind((A, 0)); a.settimeout(10)
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind((B, 0)); b.settimeout(5)
app = modal.App.lookup("knock", create_if_missing=True)
sb = modal.Sandbox.create("sleep", "120", app=app, outbound_cidr_allowlist=[A + "/32"])
inside = '''
import socket, sys
A, PA = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 40404)); s.settimeout(15)
s.sendto(b"to-A", (A, PA))
data, peer = s.recvfrom(64)
try:
    s.sendto(b"to-" + peer[0].encode(), peer)
except OSError:
    pass
'''
p = sb.exec("python3", "-c", inside, A, str(a.getsockname()[1]))
assert a.recvfrom(64)[0] == b"to-A"
ours = {a.getsockname()[1], b.getsockname()[1]}
ports = {int(line.split()[1].split(":")[1], 16) for line in open("/proc/net/udp").readlines()[1:]} - ours
for port in ports:  # slirp4netns's socket for the sandbox's flow to A: the only other one here
    b.sendto(b"knock", (A, port))
try:
    print(b.recvfrom(64)[0].decode())
except socket.timeout:
    print("nothing")
p.wait()
sb.terminate()
"""


@pytest.mark.gvisor
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
                    reason="root, unshare and ip: a network namespace of the test's own")
def test_an_outsider_that_knocks_is_not_answered_past_the_allowlist(runner):
    # bwrap/nsjail: the output hook's `ct direction reply accept` takes the knock for the start of a
    # connection and the sandbox's answer to B for its reply (found by red3). gVisor's link filter holds.
    argv = ["unshare", "--net", "--", sys.executable, "-c", KNOCK, str(Path(__file__).parents[2])]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["nothing"]
