"""Packet and raw sockets: the way past an egress filter that sits in the sandbox's own namespace.

The filter (netplan.py) is on the namespace's output hook, which a packet socket's frames never
meet: with CAP_NET_RAW, sandbox root could hand-build a frame to an address the filter refuses
and put it on tap0, and slirp4netns would deliver it (found by the gVisor network work: a UDP
datagram to the host's address past `outbound_cidr_allowlist`). Sandbox root has no CAP_NET_RAW
(layout.SANDBOX_ROOT_CAPS); ping works over ICMP datagram sockets, which the filter does see.
"""

import json
import socket

import pytest

from pysandbox import identity

from ..listeners import host_address
from ._inside import py_ok

pytestmark = pytest.mark.rootless

SOCKETS = r"""
import json, socket
kinds = {"packet": (socket.AF_PACKET, socket.SOCK_RAW, 0x0300), "packet-dgram": (socket.AF_PACKET, socket.SOCK_DGRAM, 0x0300),
         "raw-ip": (socket.AF_INET, socket.SOCK_RAW, 17), "raw-ipproto-raw": (socket.AF_INET, socket.SOCK_RAW, 255),
         "raw-icmp": (socket.AF_INET, socket.SOCK_RAW, 1), "raw-ipv6": (socket.AF_INET6, socket.SOCK_RAW, 17)}
out = {}
for name, args in kinds.items():
    try:
        socket.socket(*args).close()
        out[name] = "opened"
    except OSError as exc:
        out[name] = type(exc).__name__
bounding = int([l for l in open("/proc/self/status") if l.startswith("CapBnd")][0].split()[1], 16)
out["net_raw_in_bounding_set"] = bool(bounding >> 13 & 1)
print(json.dumps(out))
"""

# A frame hand-built for the host's address, put on tap0 past the filter: what the attack sent.
FRAME = r"""
import fcntl, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
except OSError as exc:
    print(type(exc).__name__); sys.exit()
ours = fcntl.ioctl(p, 0x8927, struct.pack("256s", b"tap0"))[18:24]  # SIOCGIFHWADDR
try:  # refused by the filter, but the kernel resolves the gateway's address first
    socket.create_connection(("10.0.2.3", 53), timeout=1).close()
except OSError:
    pass
gateway = bytes.fromhex(open("/proc/net/arp").readlines()[1].split()[3].replace(":", ""))
payload = b"past-the-filter"
udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton("10.0.2.100"),
                 socket.inet_aton(host))
words = sum(struct.unpack("!10H", ip))
words = (words >> 16) + (words & 0xFFFF)
ip = ip[:10] + struct.pack("!H", ~(words + (words >> 16)) & 0xFFFF) + ip[12:]
p.sendto(gateway + ours + b"\x08\x00" + ip + udp, ("tap0", 0x0800))
print("sent")
"""

PING = r"""
import os, socket, struct, sys
if len(sys.argv) > 2:
    os.setgroups([]); os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[2]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.settimeout(3)
try:
    s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"ping", (sys.argv[1], 0))
    reply = s.recv(64)
    print("reply" if reply[0] == 0 else "other")
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.mark.gvisor
def test_sandbox_root_opens_no_packet_or_raw_socket(sandboxes):
    sb = sandboxes("sleep", "60", block_network=True)
    kinds = ("packet", "packet-dgram", "raw-ip", "raw-ipproto-raw", "raw-icmp", "raw-ipv6")
    assert json.loads(py_ok(sb, SOCKETS)) == {**dict.fromkeys(kinds, "PermissionError"), "net_raw_in_bounding_set": False}


def test_a_hand_built_frame_does_not_pass_the_allowlist(sandboxes):
    address = host_address()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind((address, 0))
        server.settimeout(2)
        sb = sandboxes("sleep", "60", outbound_cidr_allowlist=["198.51.100.0/24"])
        assert py_ok(sb, FRAME, address, str(server.getsockname()[1])).strip() == "PermissionError"
        with pytest.raises(socket.timeout):
            server.recvfrom(64)


@pytest.mark.parametrize("uid", [None, pytest.param(1000, marks=pytest.mark.skipif(
    identity.current().size == 1, reason="sandbox root is this caller's only id (test_identity_single.py)"))])
def test_ping_works_over_icmp_datagram_sockets(sandboxes, uid):
    sb = sandboxes("sleep", "60", block_network=True)
    assert py_ok(sb, PING, "127.0.0.1", *([str(uid)] if uid is not None else [])).strip() == "reply"


def test_ping_still_meets_the_filter(sandboxes, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_NETWORK_REACHES_HOST")  # the host's own address refused, as by default
    sb = sandboxes("sleep", "60")
    assert py_ok(sb, PING, host_address()).strip() == "PermissionError"
