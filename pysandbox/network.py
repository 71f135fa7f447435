"""What users pass for a sandbox's network, validated, and the Tunnel they get back.

Tunnels are local: a port of the sandbox is forwarded to a free port on the
host's 127.0.0.1 (by slirp4netns, see runtime/netplan.py). Nothing is
published beyond this machine and nothing is encrypted: `encrypted_ports`
only keep Modal's Tunnel shape (no `tcp_socket`), and `url` says `http://`
because a local tunnel carries plain TCP.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any, Optional, Sequence, Tuple

from ._validate import whole_number
from .exception import InvalidError


@dataclasses.dataclass(frozen=True)
class Tunnel:
    """A sandbox port reachable from this host (Modal's modal.Tunnel)."""

    host: str
    port: int
    unencrypted_host: Optional[str]
    unencrypted_port: Optional[int]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def tls_socket(self) -> Tuple[str, int]:
        return self.host, self.port

    @property
    def tcp_socket(self) -> Tuple[str, int]:
        if self.unencrypted_host is None or self.unencrypted_port is None:
            raise InvalidError(
                "This tunnel is not configured for unencrypted TCP. Please use `unencrypted_ports=` to expose it."
            )
        return self.unencrypted_host, self.unencrypted_port


def tunnel(host_port: int, encrypted: bool) -> Tunnel:
    if encrypted:
        return Tunnel("127.0.0.1", host_port, None, None)
    return Tunnel("127.0.0.1", host_port, "127.0.0.1", host_port)


def check_port(port: Any, what: str) -> int:
    return whole_number(port, what, minimum=1, maximum=65535)


def check_ports(encrypted: Sequence[int], unencrypted: Sequence[int]) -> Tuple[Tuple[int, bool], ...]:
    """(sandbox port, encrypted) pairs; a port may be opened once."""
    ports = [(check_port(p, "encrypted_ports entries"), True) for p in encrypted or ()]
    ports += [(check_port(p, "unencrypted_ports entries"), False) for p in unencrypted or ()]
    seen = [port for port, _ in ports]
    duplicates = sorted({port for port in seen if seen.count(port) > 1})
    if duplicates:
        raise InvalidError(f"Port(s) {duplicates} are listed more than once in encrypted_ports/unencrypted_ports.")
    return tuple(ports)


def check_cidrs(cidrs: Optional[Sequence[str]]) -> Optional[Tuple[str, ...]]:
    """Normalised networks ("10.1.2.3" is "10.1.2.3/32"); None allows every destination."""
    if cidrs is None:
        return None
    if isinstance(cidrs, str):
        raise InvalidError("outbound_cidr_allowlist must be a list of CIDR strings, not a single string.")
    networks = []
    for cidr in cidrs:
        if not isinstance(cidr, str):
            raise InvalidError(f"outbound_cidr_allowlist entries must be strings, got {cidr!r}")
        try:
            networks.append(str(ipaddress.ip_network(cidr, strict=False)))
        except ValueError:
            raise InvalidError(f"Invalid CIDR {cidr!r} in outbound_cidr_allowlist: use e.g. '10.0.0.0/8'.") from None
    return tuple(networks)
