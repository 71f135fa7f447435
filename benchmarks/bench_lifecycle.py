"""create (host image) + exec("true") + wait + terminate under each runner, side by side,
each against its bare runner running /bin/true: `bwrap ...` and `nsjail -Mo ...` with the
same host directories, /proc and a minimal /dev.

Bars (issue 19): with Modal's default `terminate()` (teardown finishes in the background,
in the supervisor), the median at most 1.3x the bare runner; with `terminate(wait=True)`
(returns once teardown is complete), at most 1.2x the `terminate()` cycle plus the kernel's
own teardown of the bare runner's namespaces (its pid 1 killed, until the runner exits:
_common.bare_teardown_ms). The sandboxes have block_network=True, like the baselines' new
network namespace (benchmarks/bench_network.py prices the default network). The runner is
chosen per sandbox (experimental_options), and the runs of all twelve are interleaved so
they see the same machine load. A create takes the warm spare the one before started
(runtime/spare.py); the cycle without it (PYSANDBOX_WARM_SPARE=0) is measured in the same
rounds.

Also the caller's own CPU per cycle (time.process_time(): user + system of the calling
process, its threads included, the supervisor and runner not), against the bare runner's
spawn and wait from Python: on a busy machine every ms of it is a ms of wall time. Its
split into user and system time (getrusage, whose split the kernel samples per tick: summed
over all cycles, not per cycle) shows how much is the state disk's: with the state directory
on ext4, the system time grows with the inodes recently freed there (docs/ARCHITECTURE.md).
"""

import os
import resource
import statistics
import sys
import time

from _common import (
    RUNNERS,
    app,
    bare_bwrap_argv,
    bare_nsjail_argv,
    bare_teardown_ms,
    interleaved,
    report,
    spawn_and_wait,
)

import pysandbox as modal

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
WARMUP = 5
ENDINGS = {"terminate()": False, "terminate(wait=True)": True}


def lifecycle(the_app, runner, wait):
    sb = modal.Sandbox.create(app=the_app, block_network=True, experimental_options={"runner": runner})
    sb.exec("true").wait()
    sb.terminate(wait=wait)


def without_spare(the_app, runner):
    """The terminate() cycle with PYSANDBOX_WARM_SPARE=0: a supervisor spawned by the create, its
    namespaces made on the create's path (the spare waiting meanwhile is left for the next cycle)."""
    previous = os.environ.get("PYSANDBOX_WARM_SPARE")
    os.environ["PYSANDBOX_WARM_SPARE"] = "0"
    try:
        lifecycle(the_app, runner, False)
    finally:
        os.environ.pop("PYSANDBOX_WARM_SPARE")
        if previous is not None:
            os.environ["PYSANDBOX_WARM_SPARE"] = previous


def cpu_of(func, samples, split=None):
    """func, with the caller's CPU time it took (ms) appended to samples, and its user and
    system seconds added to `split` (a two-item list), if given."""
    def measured():
        start, usage = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        func()
        samples.append((time.process_time() - start) * 1000)
        if split is not None:
            after = resource.getrusage(resource.RUSAGE_SELF)
            split[0] += after.ru_utime - usage.ru_utime
            split[1] += after.ru_stime - usage.ru_stime
    return measured


def cpu_median(samples):
    return statistics.median(samples[WARMUP:])


def main():
    the_app = app()
    bare = {"bwrap": bare_bwrap_argv(), "nsjail": bare_nsjail_argv()}
    argv_of = {"bwrap": bare_bwrap_argv, "nsjail": bare_nsjail_argv}
    teardowns = {runner: [] for runner in RUNNERS}  # each call's own figure, without its setup
    funcs = {}
    cpu = {}  # the caller's CPU of each call, in ms
    split = {runner: [0.0, 0.0] for runner in RUNNERS}  # the caller's user and system seconds, all cycles
    for runner in RUNNERS:
        cpu["bare", runner], cpu["terminate()", runner] = [], []
        funcs["bare", runner] = cpu_of(lambda runner=runner: spawn_and_wait(bare[runner]), cpu["bare", runner])
        funcs["teardown", runner] = lambda runner=runner: teardowns[runner].append(bare_teardown_ms(argv_of[runner]))
        funcs["terminate()", runner] = cpu_of(lambda runner=runner: lifecycle(the_app, runner, False),
                                              cpu["terminate()", runner], split[runner])
        funcs["terminate(wait=True)", runner] = lambda runner=runner: lifecycle(the_app, runner, True)
        funcs["no spare", runner] = lambda runner=runner: without_spare(the_app, runner)
    medians = interleaved(funcs, RUNS, warmup=WARMUP)
    teardown = {runner: statistics.median(values[WARMUP:]) for runner, values in teardowns.items()}
    for runner in RUNNERS:
        report(f"{runner}: create+exec(true)+wait+terminate()", medians["terminate()", runner],
               f"bare {runner} /bin/true", medians["bare", runner], bar=1.3)
        print(f"{runner}: kernel teardown of the bare runner's namespaces: median {teardown[runner]:.3f} ms",
              flush=True)
        report(f"{runner}: create+exec(true)+wait+terminate(wait=True)", medians["terminate(wait=True)", runner],
               "the terminate() cycle + that teardown", medians["terminate()", runner] + teardown[runner], bar=1.2)
    for runner in RUNNERS:
        report(f"{runner}: create+exec(true)+wait+terminate(), the warm spare", medians["terminate()", runner],
               "the same with PYSANDBOX_WARM_SPARE=0", medians["no spare", runner])
    for ending in ENDINGS:
        report(f"nsjail vs bwrap: create+exec(true)+wait+{ending}", medians[ending, "nsjail"],
               "the same under bwrap", medians[ending, "bwrap"])
    report("bare nsjail vs bare bwrap: /bin/true", medians["bare", "nsjail"], "bare bwrap",
           medians["bare", "bwrap"])
    for runner in RUNNERS:
        report(f"{runner}: the caller's CPU per create+exec(true)+wait+terminate()",
               cpu_median(cpu["terminate()", runner]), f"its CPU to spawn and wait for bare {runner}",
               cpu_median(cpu["bare", runner]))
        cycles = len(cpu["terminate()", runner])
        print(f"{runner}: the caller's CPU per cycle, all cycles: user {split[runner][0] / cycles * 1000:.3f} ms, "
              f"system {split[runner][1] / cycles * 1000:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
