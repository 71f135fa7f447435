"""The window of docs/SECURITY.md's refusal of the host's own addresses: how long after the host gains an
address a running sandbox's egress filter refuses it (its DNS filter replaces the filter's host sets on the
host's netlink notification: native/supervisor/hostaddr.c), under each runner.

Root only: each run adds an address to the host's loopback (TEST-NET-3) and times from just before `ip addr
add` until `nft monitor`, in the sandbox's network namespace, shows the element in the set; then removes it.
The same run's `ip addr add` alone is the baseline: the window is at most the difference plus the
monitor's own latency.
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

import psutil
from _common import RUNNERS, app, report

import pysandbox as modal

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 30


def _netns_pid(sb):
    """A process in the sandbox's network namespace on the host's side: its DNS filter (a fork of the supervisor)."""
    supervisor = psutil.Process(sb._record.supervisor.pid)
    ours = os.readlink("/proc/self/ns/net")
    return next(c.pid for c in supervisor.children(recursive=True) if c.name() == supervisor.name()
                and os.readlink(f"/proc/{c.pid}/ns/net") != ours)


def _seen(monitor, address):
    for line in monitor.stdout:
        if "add element" in line and f"{address}" in line.replace("/32", "").replace(",", " ").split():
            return


def window(runner):
    os.environ.pop("PYSANDBOX_NETWORK_REACHES_HOST", None)
    sb = modal.Sandbox.create(app=app(), experimental_options={"runner": runner})
    sb.exec("true").wait()  # its network is connected
    monitor = subprocess.Popen(["stdbuf", "-oL", "nsenter", "-t", str(_netns_pid(sb)), "-n", "nft", "monitor"],
                               stdout=subprocess.PIPE, text=True)
    windows, commands = [], []
    try:
        for i in range(RUNS + 1):
            address = f"203.0.113.{i + 1}"
            begin = time.perf_counter()
            subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
            try:
                added = time.perf_counter()
                _seen(monitor, address)
                if i > 0:  # the first: nft monitor's own start
                    windows.append((time.perf_counter() - begin) * 1000)
                    commands.append((added - begin) * 1000)
            finally:
                subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=True)
            time.sleep(0.2)  # the removal's update, out of the next run's way
    finally:
        monitor.kill()
        monitor.wait()
        failed = [line for line in (sb._dir / "supervisor.log").read_text().splitlines() if "host's" in line]
        sb.terminate()
    print(*failed, sep="\n")
    report(f"{runner}: host address added -> refused by a running sandbox", statistics.median(windows),
           "`ip addr add` alone", statistics.median(commands))
    worst = max(range(RUNS), key=windows.__getitem__)
    print(f"{runner}: window max {windows[worst]:.3f} ms over {RUNS} runs (its `ip addr add` "
          f"{commands[worst]:.3f} ms)", flush=True)


def main():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        sys.exit("bench_host_addresses: root and ip(8) needed (it adds addresses to the host)")
    gvisor = shutil.which(os.environ.get("PYSANDBOX_RUNSC", "runsc")) is not None
    for runner in RUNNERS + (("gvisor",) if gvisor else ()):
        window(runner)


if __name__ == "__main__":
    main()
