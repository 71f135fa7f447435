"""create (host image) + exec("true") + wait + terminate under each runner, side by side,
each against its bare runner running /bin/true: `bwrap ...` and `nsjail -Mo ...` with the
same host directories, /proc and a minimal /dev.

Bars (issue 19): with Modal's default `terminate()` (teardown finishes in the background,
in the supervisor), the median at most 1.3x the bare runner; with `terminate(wait=True)`
(returns once teardown is complete), at most 1.2x the `terminate()` cycle plus the kernel's
own teardown of the bare runner's namespaces (its pid 1 killed, until the runner exits:
_common.bare_teardown_ms). The sandboxes have block_network=True, like the baselines' new
network namespace (benchmarks/bench_network.py prices the default network). The runner is
chosen per sandbox (experimental_options), and the runs of all ten are interleaved so
they see the same machine load.
"""

import statistics
import sys

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


def main():
    the_app = app()
    bare = {"bwrap": bare_bwrap_argv(), "nsjail": bare_nsjail_argv()}
    argv_of = {"bwrap": bare_bwrap_argv, "nsjail": bare_nsjail_argv}
    teardowns = {runner: [] for runner in RUNNERS}  # each call's own figure, without its setup
    funcs = {}
    for runner in RUNNERS:
        funcs["bare", runner] = lambda runner=runner: spawn_and_wait(bare[runner])
        funcs["teardown", runner] = lambda runner=runner: teardowns[runner].append(bare_teardown_ms(argv_of[runner]))
        for ending, wait in ENDINGS.items():
            funcs[ending, runner] = lambda runner=runner, wait=wait: lifecycle(the_app, runner, wait)
    medians = interleaved(funcs, RUNS, warmup=WARMUP)
    teardown = {runner: statistics.median(values[WARMUP:]) for runner, values in teardowns.items()}
    for runner in RUNNERS:
        report(f"{runner}: create+exec(true)+wait+terminate()", medians["terminate()", runner],
               f"bare {runner} /bin/true", medians["bare", runner], bar=1.3)
        print(f"{runner}: kernel teardown of the bare runner's namespaces: median {teardown[runner]:.3f} ms",
              flush=True)
        report(f"{runner}: create+exec(true)+wait+terminate(wait=True)", medians["terminate(wait=True)", runner],
               "the terminate() cycle + that teardown", medians["terminate()", runner] + teardown[runner], bar=1.2)
    for ending in ENDINGS:
        report(f"nsjail vs bwrap: create+exec(true)+wait+{ending}", medians[ending, "nsjail"],
               "the same under bwrap", medians[ending, "bwrap"])
    report("bare nsjail vs bare bwrap: /bin/true", medians["bare", "nsjail"], "bare bwrap",
           medians["bare", "bwrap"])


if __name__ == "__main__":
    main()
