"""What the DNS filter of an outbound_domain_allowlist adds to a name's resolution: the same
query loop (raw UDP, one query at a time) run on the host straight at the upstream DNS server
(the baseline), and inside a sandbox at its filter, in one run; medians and ratios.

Two cases through the filter: a name whose address is already allowed (a forward, nothing for
nft) and names whose answers bring a new address each time (the filter has its nft allow it
before answering). The upstream is a DNS server on the host's loopback in a process of its own.
Under gVisor too where it runs (root, runsc): its filter answers on a link of its own.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from _common import app, report, runners_here

import pysandbox as modal

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
ROOT = Path(__file__).resolve().parents[1]

SERVER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.dnsserver import DNSServer

class Addresses(dict):  # nN.bench.test -> a new address per N; same.bench.test -> one address
    def get(self, name, default=None):
        if not name.endswith(".bench.test"):
            return default
        n = int(name.split(".")[0][1:]) if name[0] == "n" else 0
        return [(f"10.77.{n >> 8 & 255}.{n & 255}", 3600)]

server = DNSServer()
server.records = Addresses()
print(server.address, flush=True)
sys.stdin.read()
"""

LOOP = r"""
import json, socket, statistics, struct, sys, time
address, port, runs, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((address, port))
s.settimeout(5)
samples = []
for i in range(runs + 20):
    name = f"n{i + 1 + int(sys.argv[5])}.bench.test" if names == "fresh" else "same.bench.test"
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    query = struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    start = time.perf_counter()
    s.send(query)
    answer = s.recv(512)
    elapsed = (time.perf_counter() - start) * 1000
    assert answer[3] & 15 == 0 and answer[6:8] == b"\0\1", answer
    if i >= 20:
        samples.append(elapsed)
print(json.dumps(statistics.median(samples)))
"""


def loop_on_host(address, port, names, offset):
    out = subprocess.run([sys.executable, "-c", LOOP, address, str(port), str(RUNS), names, str(offset)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def loop_in(sb, names, offset):
    resolver = sb.filesystem.read_text("/etc/resolv.conf").split()[1]  # gVisor's: the filter's link
    p = sb.exec("python3", "-c", LOOP, resolver, "53", str(RUNS), names, str(offset))
    assert p.wait() == 0, p.stderr.read()
    return json.loads(p.stdout.read())


def main():
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(ROOT)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        upstream = server.stdout.readline().strip()
        host, port = upstream.split(":")
        os.environ["PYSANDBOX_DNS_UPSTREAM"] = upstream
        os.environ["PYSANDBOX_DNS_QPS"] = "1000000"  # the bound would drop most of a tight loop
        the_app = app()
        for k, runner in enumerate(runners_here()):
            sb = modal.Sandbox.create("sleep", "600", app=the_app, outbound_domain_allowlist=["*.bench.test"],
                                      experimental_options={"runner": runner})
            try:
                direct = loop_on_host(host, int(port), "same", 0)
                cached = loop_in(sb, "same", 0)
                fresh = loop_in(sb, "fresh", k * 2 * (RUNS + 20))
                direct_fresh = loop_on_host(host, int(port), "fresh", (k * 2 + 1) * (RUNS + 20))
            finally:
                sb.terminate()
            report(f"{runner}: resolution through the filter, address already allowed", cached,
                   "straight to the upstream from the host", direct)
            report(f"{runner}: resolution through the filter, a new address each time (nft)", fresh,
                   "straight to the upstream from the host", direct_fresh)
    finally:
        server.stdin.close()
        server.wait()


if __name__ == "__main__":
    main()
