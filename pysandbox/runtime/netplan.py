"""How a sandbox gets its network: its mode (for the runner), its mounts, the supervisor's options.

Every sandbox has a network namespace of its own. The runner gets the mode in
RunnerInputs.network and knows nothing else of this module.
"none" (block_network=True): loopback only.
"default": outbound access through slirp4netns, a user-mode TCP/IP stack run as
the sandbox identity: the sandbox's connections leave as ordinary sockets of
that unprivileged host process. Unreachable from the sandbox, by construction
or by its egress filter (nftables, loaded into the sandbox's own network
namespace while init waits in its handshake with the supervisor, before anything in the
sandbox runs; sandbox processes hold no capability to change it):
  * the host's loopback services: the sandbox's 127.0.0.1 is its own, and the
    gateway's path to the host's loopback is closed (--disable-host-loopback,
    and 10.0.2.2 is rejected outright);
  * the host's abstract and path Unix sockets: abstract sockets belong to the
    network namespace, and host paths are not mounted;
  * link-local addresses, the cloud metadata service 169.254.169.254 among them;
  * with outbound_cidr_allowlist, every destination outside it (DNS through
    slirp4netns's resolver stays allowed).
Without slirp4netns, nft or (for an unprivileged caller) a /dev/net/tun it may open, "default" falls back to loopback
only, with a one-line warning (once per process): never to the host's network.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import attrs

from .._core.spec import SandboxSpec
from .._state import paths
from .._state.files import give_to_sandbox_owner
from . import layout

HELPER = "slirp4netns"
NFT = "nft"
TUN = "/dev/net/tun"
GATEWAY = "10.0.2.2"  # slirp4netns's view of the host
DNS = "10.0.2.3"  # slirp4netns's resolver, forwarding to the host's
LINK_LOCAL = ("169.254.0.0/16", "fe80::/10")
_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
logger = logging.getLogger("pysandbox")
_warned: List[bool] = []


def tool(name: str) -> Optional[str]:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:{_SEARCH_PATH}")


def available() -> bool:
    """Whether "default" can connect sandboxes (else it falls back to loopback only)."""
    return tool(HELPER) is not None and tool(NFT) is not None and _tun_usable()


def needs() -> str:
    """What the default network needs, said the same way by the warning, doctor and create."""
    unprivileged = "" if os.geteuid() == 0 else f", and {TUN} open to you (`sudo chmod 0666 {TUN}`)"
    return f"it needs slirp4netns and nft (`apt-get install slirp4netns nftables`){unprivileged}"


def _tun_usable() -> bool:
    """slirp4netns opens /dev/net/tun as the sandbox identity. A root caller's supervisor gives it
    a node of its own (native/supervisor/netns.c's private_tun): the kernel's tun support is all it
    needs, whatever the host node's mode. An unprivileged caller's helper opens the host's node."""
    if os.geteuid() == 0:
        return os.path.isdir(os.path.dirname(TUN))
    return os.access(TUN, os.R_OK | os.W_OK)


def listening(ports: Sequence[int]) -> bool:
    """Whether every port is listening on the host's 127.0.0.1 (read from /proc, without connecting)."""
    loopback = int.from_bytes(socket.inet_aton("127.0.0.1"), sys.byteorder)  # as the kernel prints it
    wanted = {f"{loopback:08X}:{port:04X}" for port in ports}
    if not wanted:
        return True
    with open("/proc/net/tcp") as table:
        next(table)
        bound = {fields[1] for fields in map(str.split, table) if fields[3] == "0A"}  # 0A: LISTEN
    return wanted <= bound


def _fallback_warning() -> None:
    if not _warned:
        _warned.append(True)
        logger.warning("pysandbox: sandboxes get no network: %s", needs())


def egress_rules(allowlist: Optional[Sequence[str]]) -> str:
    """The nftables ruleset of a sandbox's network namespace."""
    v4 = [c for c in allowlist or () if ":" not in c]
    v6 = [c for c in allowlist or () if ":" in c]
    rules = [
        'oifname "lo" accept',
        "ct state established,related accept",  # replies, e.g. to connections in through a tunnel
        f"ip daddr {GATEWAY} reject",
        f"ip daddr {LINK_LOCAL[0]} reject",
        f"ip6 daddr {LINK_LOCAL[1]} reject",
    ]
    if allowlist is not None:
        rules += [f"ip daddr {DNS} udp dport 53 accept", f"ip daddr {DNS} tcp dport 53 accept"]
        rules += [f"ip daddr {{ {', '.join(v4)} }} accept"] if v4 else []
        rules += [f"ip6 daddr {{ {', '.join(v6)} }} accept"] if v6 else []
        rules += ["meta l4proto tcp reject with tcp reset", "reject"]
    body = "\n".join(f"    {rule}" for rule in rules)
    return ("table inet pysandbox {\n  chain output {\n    type filter hook output priority 0; policy accept;\n"
            f"{body}\n  }}\n}}\n")


def free_host_port() -> int:
    """A port free on the host's 127.0.0.1 right now (the helper binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@attrs.frozen
class NetworkPlan:
    mode: str  # what the runner applies: "default" (connected) or "none" (loopback only)
    tunnels: Tuple[Tuple[int, int, bool], ...] = ()  # (sandbox port, host port, encrypted)
    net_dir: Optional[Path] = None

    def mounts(self, image: bool) -> Tuple[layout.Mount, ...]:
        """The sandbox's resolv.conf, for "default". `image`: the root is an image's, whose own
        /etc/resolv.conf the sandbox's covers (the host image shares the host's /etc, where it
        may be a link into /run)."""
        if self.mode != "default":
            return ()
        dest = "/etc/resolv.conf" if image else os.path.realpath("/etc/resolv.conf")
        return (layout.Mount("ro-bind", str(self.net_dir / "resolv.conf"), dest),)

    def supervisor_args(self, rules: str) -> List[str]:
        if self.mode != "default":
            return []
        argv = ["--net-helper", tool(HELPER), "--net-dir", str(self.net_dir), "--net-filter", tool(NFT),
                "--net-rules", rules, "--cleanup", str(self.net_dir)]
        for guest, host, _ in self.tunnels:
            argv += ["--net-forward", f"{host}:{guest}"]
        return argv


def plan(spec: SandboxSpec, directory: Path) -> NetworkPlan:
    """Decide the network of the sandbox about to start in `directory`, and prepare its files."""
    if spec.network != "default":
        return NetworkPlan(spec.network)
    if not available():
        _fallback_warning()
        return NetworkPlan("none")
    net_dir = paths.SandboxDir(directory).net
    net_dir.mkdir(mode=0o700)
    (net_dir / "resolv.conf").write_text(f"nameserver {DNS}\n")
    give_to_sandbox_owner(net_dir)  # the helper, run as the sandbox identity, makes its api socket here
    tunnels = tuple((guest, free_host_port(), encrypted) for guest, encrypted in spec.ports)
    return NetworkPlan("default", tunnels, net_dir)
