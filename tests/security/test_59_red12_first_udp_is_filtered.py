"""Red team (red12), guard: the entrypoint's first datagrams, sent before anything else, are filtered too.

Since 4e57c47 the supervisor starts the egress filter's nft, slirp4netns and the DNS filter all before it waits
for any. test_12 checks the entrypoint's first TCP connections; slirp4netns forwards UDP as well, and a
datagram needs no handshake that a late filter could still catch: the entrypoint sends a burst of them, at
once and for a second, to a host service bound to the wildcard address (reached through the host's own
address, which only the filter refuses), and to the link-local metadata address. None may arrive. Held at the
time of writing (init is released only once the filter is loaded, slirp4netns ready and the DNS filter
listening); kept as a guard."""

import json
import socket

import pytest

from ..listeners import host_address

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

SEND = r"""
import json, socket, sys, time
targets = [tuple(t) for t in json.loads(sys.argv[1])]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent, end = 0, time.monotonic() + 1
while time.monotonic() < end:
    for target in targets:
        try:
            s.sendto(b"red12", target)
            sent += 1
        except OSError:
            pass
print(sent)
"""


def test_the_entrypoints_first_datagrams_are_filtered(sandboxes, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_NETWORK_REACHES_HOST")
    service = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        service.bind(("0.0.0.0", 0))
        service.settimeout(3)
        targets = [[host_address(), service.getsockname()[1]], ["169.254.169.254", 80]]
        sb = sandboxes("python3", "-S", "-c", SEND, json.dumps(targets))
        sb.wait(raise_on_termination=False)
        assert sb.returncode == 0, sb.stderr.read()
        with pytest.raises(socket.timeout):
            data, peer = service.recvfrom(64)
            pytest.fail(f"a datagram passed the filter: {data!r} from {peer}")
    finally:
        service.close()
