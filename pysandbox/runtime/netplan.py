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
    and all of slirp's network 10.0.2.0/24 is rejected outright but its resolver's
    port 53, which slirp relays to the host's resolver: any other port of 10.0.2.3
    would reach that address, on loopback on some hosts);
  * the host's abstract and path Unix sockets: abstract sockets belong to the
    network namespace, and host paths are not mounted;
  * link-local addresses, the cloud metadata service 169.254.169.254 among them;
  * with outbound_cidr_allowlist, every destination outside it (DNS through
    slirp4netns's resolver stays allowed);
  * with outbound_domain_allowlist, every destination but those networks and the
    addresses the allowed names resolved to, while their TTL lasts. The sandbox's
    resolv.conf then names the DNS filter (native/supervisor/dnsfilter.c: a child of
    the supervisor, as the sandbox identity, on the host side) at 127.0.0.53, which
    forwards only the allowed names to the host's resolver and adds their answers'
    addresses to the filter's sets; any other name is NXDOMAIN, slirp4netns's
    resolver is out of reach. Under a runner with a stack of its own (gVisor), which
    never reaches the namespace's loopback, at 10.0.3.2 on the filter's own link
    (FILTER_LINK), made only for a sandbox created with names filtered.
Every sandbox with "default" has that DNS filter: it also replaces the policy of
a running sandbox (change_policy), in one nft transaction. Each policy marks the
connections it accepts (ct mark); a packet of an older connection is judged
again, so what the new policy refuses is cut.
Without slirp4netns, nft or (for an unprivileged caller) a /dev/net/tun it may open, "default" falls back to
loopback
only, with a one-line warning (once per process): never to the host's network.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import attrs

from .. import bounds, settings
from .._core.spec import SandboxSpec
from .._state import paths
from .._state.files import give_to_sandbox_owner
from ..exception import ExecutionError, InvalidError
from ..network import outbound_policy
from . import layout

HELPER = "slirp4netns"
NFT = "nft"
TUN = "/dev/net/tun"
SLIRP_NETWORK = "10.0.2.0/24"  # slirp4netns's virtual network: the gateway, its resolver, the sandbox (.100)
DNS = "10.0.2.3"  # slirp4netns's resolver, forwarding to the host's
GATEWAY = "10.0.2.2"  # slirp4netns's gateway: where a tunnel's connections come from
TAP = "tap0"  # the sandbox's link, which slirp4netns serves (native/supervisor/netns.c)
FILTER_DNS = "127.0.0.53"  # the DNS filter, in the sandbox's namespace (dnsfilter.h: DNS_FILTER_ADDRESS)
# Under a runner with a stack of its own, whose packets the namespace's loopback never sees: the filter's link
# (dnsfilter.h: DNS_FILTER_LINK, DNS_FILTER_LINK_ADDRESS), made only for a sandbox created with names filtered.
FILTER_LINK = "dns0"
FILTER_LINK_DNS = "10.0.3.2"
LINK_LOCAL = ("169.254.0.0/16", "fe80::/10")
# runsc adopts the namespace's links when it starts: the filter's link cannot come later.
OWN_STACK_DOMAINS_LATER = ("The gVisor runner filters names only in a sandbox created with outbound_domain_allowlist "
                           "(its DNS filter's link is made before gVisor starts): create it with one, or use the "
                           "bwrap or nsjail runner (docs/RUNNERS.md).")
_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
logger = logging.getLogger("pysandbox")
_warned: List[bool] = []


_found: Dict[Tuple[str, str], str] = {}  # (name, search path) -> where tool() found it


def tool(name: str) -> Optional[str]:
    """Where `name` is on PATH (or the system's directories). A path found is kept while it is still an
    executable there: every create with the default network asks for both helpers (a search of PATH
    costs ~50 us each time, one access() a few)."""
    search = f"{os.environ.get('PATH', '')}:{_SEARCH_PATH}"
    found = _found.get((name, search))
    if found is not None and os.access(found, os.X_OK) and not os.path.isdir(found):  # shutil.which's test
        return found
    found = shutil.which(name, path=search)
    if found is None:
        _found.pop((name, search), None)
    else:
        _found[name, search] = found
    return found


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


Names = Optional[Tuple[str, ...]]


@attrs.frozen
class _Hook:
    """Where the egress filter sits, and how it says yes and no there."""

    family: str
    chain: str
    prelude: Tuple[str, ...]  # what is judged before the destinations refused whatever the policy says
    passes: Tuple[str, ...]  # what passes after those, before the policy is asked
    accept: str
    refuse: str  # a private or link-local destination
    refuse_rest: Tuple[str, ...]  # what the allowlists leave out


def _ports(guest_ports: Sequence[int]) -> str:
    return f"{{ {', '.join(map(str, sorted(set(guest_ports))))} }}"


def _output_hook(mark: str, guest_ports: Sequence[int]) -> _Hook:
    """The kernel's own stack (bwrap, nsjail): the inet output hook, stateful. Each policy marks the
    connections it accepts: a packet of another policy's is judged again. Replies pass only on the
    connections in through a tunnel (slirp4netns makes them from its gateway, to a tunnel's port): a
    datagram any outsider sends to the host port slirp opened for one of the sandbox's flows starts a
    connection too, whose "replies" would otherwise leave past the allowlists."""
    replies = [f"ct direction reply ct original ip saddr {GATEWAY} tcp sport {_ports(guest_ports)} accept"] \
        if guest_ports else []  # tunnels are TCP: a reply leaves from the tunnel's port
    return _Hook("inet", "type filter hook output priority 0; policy accept;", ('oifname "lo" accept',),
                 (*replies, f"ct state established,related ct mark {mark} accept"),
                 f"ct mark set {mark} accept", "reject", ("meta l4proto tcp reject with tcp reset", "reject"))


def _link_hook(guest_ports: Sequence[int]) -> _Hook:
    """A runner with a TCP/IP stack of its own (gVisor's netstack), which sends its frames on TAP through
    AF_PACKET, past the output hook: the netdev egress hook on TAP, which every frame passes (AF_PACKET's
    and PACKET_QDISC_BYPASS's too), stateless: every packet is judged. It has no conntrack: a tunnel's
    replies (slirp4netns connects from its gateway) pass by their source port; it cannot reject: refused
    packets are dropped."""
    replies = [f"ip daddr {GATEWAY} tcp sport {_ports(guest_ports)} accept"]
    return _Hook("netdev", _link_chain(TAP, "accept"), _FRAME_KINDS, tuple(replies if guest_ports else ()),
                 "accept", "drop", ("drop",))


# A frame is judged by what it is and what the sender labelled it (an AF_PACKET sender chooses the
# label): both must say ARP, or both IPv4, which the rules after these see whole (slirp4netns has no IPv6 here).
_FRAME_KINDS = ("meta protocol arp ether type arp accept", "meta protocol != ip drop", "ether type != ip drop")


def _link_chain(device: str, policy: str) -> str:
    return f'type filter hook egress device "{device}" priority 0; policy {policy};'


def _filter_link_rules() -> str:
    """The chain on the filter's link (FILTER_LINK), netdev egress as on TAP: queries to the filter's port 53,
    and ARP for its address; every other frame, a fragment's rest among them, is dropped. Behind it is a
    namespace holding nothing but the filter, with no route beyond the link."""
    rules = [*_FRAME_KINDS, f"ip daddr {FILTER_LINK_DNS} udp dport 53 accept"]
    body = "\n".join(f"    {rule}" for rule in rules)
    return f"  chain dns {{\n    {_link_chain(FILTER_LINK, 'drop')}\n{body}\n  }}\n"


def _to(addresses: Sequence[str], verdict: str) -> List[str]:
    """The rules giving packets to `addresses` (IPv4 and IPv6 addresses or prefixes) `verdict`, a family each."""
    v4 = [a for a in addresses if ":" not in a]
    v6 = [a for a in addresses if ":" in a]
    return ([f"ip daddr {{ {', '.join(v4)} }} {verdict}"] if v4 else []) + \
        ([f"ip6 daddr {{ {', '.join(v6)} }} {verdict}"] if v6 else [])


def egress_rules(cidrs: Names, domains: Names, guest_ports: Sequence[int] = (), own_stack: bool = False,
                 filter_link: bool = False, replace: bool = True) -> str:
    """The nftables transaction that replaces the ruleset of a sandbox's network namespace (or, not
    `replace`, loads the first into the new namespace, which has none). `cidrs`
    and `domains` as outbound_policy() gives them (None: no restriction); `guest_ports`: the tunnels'
    ports in the sandbox, whose replies pass. `own_stack`: the filter sits on TAP (_link_hook), for a
    runner with a stack of its own. The sets host4 and host6 hold the host's own addresses, refused whatever
    the allowlists say, as the metadata address is: the supervisor fills them as it loads the ruleset, and
    the DNS filter keeps them current (native/supervisor/hostaddr.c). `filter_link`: the sandbox has the DNS
    filter's link (own_stack only), which its own chain holds to DNS, whatever the policy."""
    mark = f"0x{secrets.randbits(31) | 1:08x}"  # this policy's: connections of another are judged again
    hook = _link_hook(guest_ports) if own_stack else _output_hook(mark, guest_ports)
    accept = hook.accept
    # Refused before an established connection passes: one made to an address the host gained, before the
    # DNS filter's update put it in host4, ends with the update (red team), whatever the policy's mark.
    rules = [*hook.prelude, f"ip daddr {LINK_LOCAL[0]} {hook.refuse}", f"ip6 daddr {LINK_LOCAL[1]} {hook.refuse}"]
    rules += [f"ip daddr @host4 {hook.refuse}", f"ip6 daddr @host6 {hook.refuse}", *hook.passes]
    # slirp4netns's own network: its resolver's port 53 while names are not filtered (the DNS filter is
    # the resolver then), nothing else. slirp relays any port of 10.0.2.3 to the host resolver's address
    # (on loopback on some hosts), and an allowed name may resolve into this network.
    if domains is None:
        rules += [f"ip daddr {DNS} udp dport 53 {accept}", f"ip daddr {DNS} tcp dport 53 {accept}"]
    rules += [f"ip daddr {SLIRP_NETWORK} {hook.refuse}"]
    if cidrs is not None or domains is not None:
        if domains is not None:
            rules += [f"ip daddr @allow4 {accept}", f"ip6 daddr @allow6 {accept}"]
        rules += _to(cidrs or (), accept)
        rules += hook.refuse_rest
    size = 2 * max(1, bounds.get("dns_addresses"))  # room for expired elements the kernel has yet to collect
    sets = "".join(f"  set allow{v} {{ type ipv{v}_addr; flags timeout; size {size}; }}\n"
                   f"  set host{v} {{ type ipv{v}_addr; flags interval; }}\n" for v in (4, 6))
    body = "\n".join(f"    {rule}" for rule in rules)
    table = f"table {hook.family} pysandbox"
    link = _filter_link_rules() if filter_link else ""
    ruleset = f"{table} {{\n{sets}  chain egress {{\n    {hook.chain}\n{body}\n  }}\n{link}}}\n"
    # A replacement is one transaction: declared, gone, replaced. A first load deletes nothing: a deleted
    # table made nft's exit wait for the kernel's release of it (~11 ms here, on every create's start).
    return f"{table}\ndelete {table}\n{ruleset}" if replace else ruleset


def resolv_conf(domains: Names, filter_link: bool = False) -> bytes:
    """The sandbox's resolv.conf: the DNS filter's address while names are filtered; with the filter's link,
    always the filter's address there (which change_policy reads back). Always the same length, so that a
    running sandbox's copy is rewritten in place (it is bind-mounted)."""
    server = FILTER_LINK_DNS if filter_link else DNS if domains is None else FILTER_DNS
    return f"nameserver {server}".ljust(31).encode() + b"\n"


def _has_filter_link(directory: int) -> bool:
    """Whether the sandbox whose net directory is open as `directory` has the DNS filter's link: its
    resolv.conf (the host's, in a directory no sandbox mounts) names the link's address."""
    conf = os.open("resolv.conf", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
    try:
        return os.read(conf, 64).split()[1:2] == [FILTER_LINK_DNS.encode()]
    finally:
        os.close(conf)


def _dns_args(domains: Names) -> List[str]:
    address, port = settings.dns_upstream()
    max_ttl = max(1, bounds.get("dns_max_ttl_s"))
    argv = ["--net-dns-upstream", address, "--net-dns-port", str(port),
            "--net-dns-qps", str(max(1, bounds.get("dns_queries_per_s"))),
            "--net-dns-addresses", str(max(1, bounds.get("dns_addresses"))),
            "--net-dns-min-ttl", str(min(max(1, bounds.get("dns_min_ttl_s")), max_ttl)),
            "--net-dns-max-ttl", str(max_ttl)]
    return argv + (["--net-domains", " ".join(domains)] if domains is not None else [])


def change_policy(net_dir: Path, cidrs: Names, domains: Names, guest_ports: Sequence[int],
                  own_stack: bool) -> None:
    """Replace the outbound policy of the running sandbox whose network is in `net_dir`: its DNS
    filter loads the new rules, with the addresses still allowed, in one nft transaction.
    `guest_ports`, `own_stack`: as egress_rules takes them."""
    cidrs, domains = outbound_policy(cidrs, domains)
    directory = os.open(net_dir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        filter_link = own_stack and _has_filter_link(directory)
        if own_stack and domains is not None and not filter_link:
            raise InvalidError(OWN_STACK_DOMAINS_LATER)
        message = ("*" if domains is None else " ".join(domains)) + "\n" + \
            egress_rules(cidrs, domains, guest_ports, own_stack, filter_link=filter_link)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as control:
            control.settimeout(30)
            control.connect(f"/proc/self/fd/{directory}/dns.sock")  # the path may be too long for a socket
            control.send(message.encode())
            verdict = control.recv(16)
        if verdict != b"ok":
            raise ExecutionError("The sandbox's network filter refused the new policy (its supervisor.log says why).")
        conf = os.open("resolv.conf", os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
        try:
            os.write(conf, resolv_conf(domains, filter_link))
        finally:
            os.close(conf)
    finally:
        os.close(directory)


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
    policy: Tuple[Names, Names] = (None, None)  # (networks, names), from outbound_policy

    def mounts(self, image: bool) -> Tuple[layout.Mount, ...]:
        """The sandbox's resolv.conf, for "default". `image`: the root is an image's, whose own
        /etc/resolv.conf the sandbox's covers (the host image shares the host's /etc, where it
        may be a link into /run)."""
        if self.mode != "default":
            return ()
        dest = "/etc/resolv.conf" if image else os.path.realpath("/etc/resolv.conf")
        return (layout.Mount("ro-bind", str(self.net_dir / "resolv.conf"), dest),)

    def supervisor_args(self, own_stack: bool) -> List[str]:
        """`own_stack`: the runner serves tap0 with a TCP/IP stack of its own (RunnerCommand.own_netstack).
        Names filtered under such a runner: the DNS filter gets its link, which resolv.conf then names."""
        if self.mode != "default":
            return []
        filter_link = own_stack and self.policy[1] is not None
        if filter_link:
            (self.net_dir / "resolv.conf").write_bytes(resolv_conf(self.policy[1], filter_link))
        rules = egress_rules(*self.policy, [guest for guest, _, _ in self.tunnels], own_stack, filter_link,
                             replace=False)
        argv = ["--net-helper", tool(HELPER), "--net-dir", str(self.net_dir), "--net-filter", tool(NFT),
                "--net-rules", rules, "--cleanup", str(self.net_dir), *_dns_args(self.policy[1])]
        if not settings.network_reaches_host():  # slirp4netns connects from the host's namespace: refuse its addresses
            argv += ["--net-host-max", str(max(1, bounds.get("host_addresses")))]
        argv += ["--net-own-stack"] if own_stack else []
        argv += ["--net-dns-link"] if filter_link else []
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
    policy = outbound_policy(spec.outbound_cidr_allowlist, spec.outbound_domain_allowlist)
    (net_dir / "resolv.conf").write_bytes(resolv_conf(policy[1]))
    give_to_sandbox_owner(net_dir)  # the helpers, run as the sandbox identity, make their sockets here
    tunnels = tuple((guest, free_host_port(), encrypted) for guest, encrypted in spec.ports)
    return NetworkPlan("default", tunnels, net_dir, policy)
