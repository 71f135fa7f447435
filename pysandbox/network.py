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
import re
from typing import Any, Optional, Sequence, Tuple

from . import bounds
from ._validate import whole_number
from .exception import InvalidError

_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\Z")


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


def check_domains(domains: Optional[Sequence[str]]) -> Optional[Tuple[str, ...]]:
    """Normalised names (lower case, no final dot): "example.com", "*.example.com" (its subdomains,
    not itself) or "*" (every name); None: names are not filtered."""
    if domains is None:
        return None
    if isinstance(domains, str) or not isinstance(domains, (list, tuple)):
        raise InvalidError("outbound_domain_allowlist must be a list of domain names, e.g. ['example.com', "
                           f"'*.example.org'], not {type(domains).__name__}.")
    if len(domains) > bounds.get("domain_allowlist"):
        raise InvalidError(f"outbound_domain_allowlist has {len(domains)} names, over the bound of "
                           f"{bounds.get('domain_allowlist')} ({bounds.variable('domain_allowlist')}).")
    return tuple(dict.fromkeys(_check_domain(name) for name in domains))


def _check_domain(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidError(f"outbound_domain_allowlist entries must be strings, got {name!r}")
    if name == "*":
        return name
    body = name.lower()[:-1] if name.endswith(".") else name.lower()
    labels = body[2:].split(".") if body.startswith("*.") else body.split(".")
    if not body.isascii() or len(body) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidError(f"Invalid domain {name!r} in outbound_domain_allowlist: pass a name such as "
                           "'example.com', '*.example.com' for its subdomains, or '*' for every name "
                           "(non-ASCII names in their xn-- form).")
    return body


def outbound_policy(cidrs: Optional[Sequence[str]], domains: Optional[Sequence[str]]
                    ) -> Tuple[Optional[Tuple[str, ...]], Optional[Tuple[str, ...]]]:
    """The (networks, names) a sandbox may reach, None meaning no restriction. As on Modal, a policy
    that names domains allows only those and the networks given (none when cidrs is None); "*" allows
    every name, hence every address any name can resolve to: everything."""
    if domains is not None and "*" in domains:
        return None, None
    if domains is not None and cidrs is None:
        return (), domains
    return cidrs, domains
