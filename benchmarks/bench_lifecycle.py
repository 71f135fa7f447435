"""create (host image) + exec("true") + wait + terminate under each runner, side by side,
each against its bare runner running /bin/true: `bwrap ...` and `nsjail -Mo ...` with the
same host directories, /proc and a minimal /dev.

Bar (issue 2): median at most 2x the bare runner. The sandboxes have block_network=True,
like the baselines' new network namespace (benchmarks/bench_network.py prices the default
network). Reported with Modal's default `terminate()` (teardown finishes in the
background, in the supervisor) and with `terminate(wait=True)` (returns once teardown is
complete). The runner is chosen per sandbox (experimental_options), and the runs of all
six are interleaved so they see the same machine load.
"""

import sys

from _common import RUNNERS, app, bare_bwrap_argv, bare_nsjail_argv, interleaved, report, spawn_and_wait

import pysandbox as modal

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
ENDINGS = {"terminate()": False, "terminate(wait=True)": True}


def lifecycle(the_app, runner, wait):
    sb = modal.Sandbox.create(app=the_app, block_network=True, experimental_options={"runner": runner})
    sb.exec("true").wait()
    sb.terminate(wait=wait)


def main():
    the_app = app()
    bare = {"bwrap": bare_bwrap_argv(), "nsjail": bare_nsjail_argv()}
    funcs = {}
    for runner in RUNNERS:
        funcs["bare", runner] = lambda runner=runner: spawn_and_wait(bare[runner])
        for ending, wait in ENDINGS.items():
            funcs[ending, runner] = lambda runner=runner, wait=wait: lifecycle(the_app, runner, wait)
    medians = interleaved(funcs, RUNS)
    for runner in RUNNERS:
        for ending in ENDINGS:
            report(f"{runner}: create+exec(true)+wait+{ending}", medians[ending, runner],
                   f"bare {runner} /bin/true", medians["bare", runner], bar=2.0)
    for ending in ENDINGS:
        report(f"nsjail vs bwrap: create+exec(true)+wait+{ending}", medians[ending, "nsjail"],
               "the same under bwrap", medians[ending, "bwrap"])
    report("bare nsjail vs bare bwrap: /bin/true", medians["bare", "nsjail"], "bare bwrap",
           medians["bare", "bwrap"])


if __name__ == "__main__":
    main()
