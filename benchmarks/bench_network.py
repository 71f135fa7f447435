"""What the default network adds to a sandbox's life: create + exec("true") + terminate with
the default network (slirp4netns + egress filter) against block_network=True (loopback only)
and the bare runner running /bin/true, under each runner side by side, interleaved in one
run; medians and ratios.

Reported three ways: the start (create and a first exec, which waits for init), the whole
cycle with Modal's default terminate() (teardown in the background), and with
terminate(wait=True). The last one carries the kernel's cost of destroying the helper's
tap device (an RCU grace period when slirp4netns closes /dev/net/tun).

Under gVisor too, as root with runsc (its netstack on the same tap0, the filter on the link: docs/RUNNERS.md),
against bare `runsc --network=none do /bin/true` and against bwrap with the default network.

Bar (issue 19): create+exec(true)+terminate() with the default network at most 1.6x bare
bwrap. The supervisor starts the network's helpers while the runner sets the sandbox up
(native/supervisor/netns.h), all of them before it waits for any, so their start overlaps the
runner's; what is left is their CPU (docs/ARCHITECTURE.md, issue 19, session 12). On the 2-core
machine it was measured on, block_network=True alone was already above the bar (2.2x bare bwrap).
"""

import statistics
import sys
import time

from _common import app, bare_bwrap_argv, bare_nsjail_argv, report, runners_here, spawn_and_wait, timed

import pysandbox as modal
from pysandbox import settings

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 50
MODES = {"default network": {}, "block_network=True": {"block_network": True},
         "names filtered": {"outbound_domain_allowlist": ["example.com"]}}  # under gVisor: the filter's link
BAR = 1.6  # issue 19: the bwrap cycle with terminate(), default network, against bare bwrap


def cycle(the_app, runner, kwargs):
    """(start ms, whole cycle ms) with terminate(), then the same with terminate(wait=True)."""
    results = []
    for wait in (False, True):
        begin = time.perf_counter()
        sb = modal.Sandbox.create(app=the_app, experimental_options={"runner": runner}, **kwargs)
        sb.exec("true").wait()
        started = time.perf_counter()
        sb.terminate(wait=wait)
        results += [(started - begin) * 1000, (time.perf_counter() - begin) * 1000]
    return results


def main():
    the_app = app()
    runners = runners_here()
    argv = {"bwrap": bare_bwrap_argv(), "nsjail": bare_nsjail_argv()}
    if "gvisor" in runners:
        argv["gvisor"] = [settings.runsc_binary(), "--network=none", "do", "/bin/true"]
    bare, samples = {runner: [] for runner in runners}, {(r, mode): [] for r in runners for mode in MODES}
    for i in range(RUNS + 3):
        for runner in runners:
            elapsed = timed(lambda: spawn_and_wait(argv[runner]))
            runs = {mode: cycle(the_app, runner, kwargs) for mode, kwargs in MODES.items()}
            if i >= 3:  # warm-up
                bare[runner].append(elapsed)
                for mode, values in runs.items():
                    samples[runner, mode].append(values)
    medians = {key: [statistics.median(column) for column in zip(*rows)] for key, rows in samples.items()}
    for runner in runners:
        for index, what in ((0, "create+exec(true) (start)"), (1, "create+exec(true)+terminate()"),
                            (3, "create+exec(true)+terminate(wait=True)")):
            ours, blocked = medians[runner, "default network"][index], medians[runner, "block_network=True"][index]
            report(f"{runner}: {what}, default network", ours, f"{what}, block_network=True", blocked)
            report(f"{runner}: {what}, default network", ours, f"bare {runner} /bin/true",
                   statistics.median(bare[runner]), bar=BAR if (runner, index) == ("bwrap", 1) else None)
        report(f"{runner}: create+exec(true) (start), names filtered", medians[runner, "names filtered"][0],
               "create+exec(true) (start), default network", medians[runner, "default network"][0])
        added = medians[runner, "default network"][0] - medians[runner, "block_network=True"][0]
        print(f"{runner}: added start cost of the default network: {added:.3f} ms (difference of the start medians)",
              flush=True)
    if "gvisor" in runners:
        for index, what in ((0, "create+exec(true) (start)"), (1, "create+exec(true)+terminate()")):
            report(f"gvisor: {what}, default network", medians["gvisor", "default network"][index],
                   f"bwrap: {what}, default network", medians["bwrap", "default network"][index])


if __name__ == "__main__":
    main()
