"""create (host image) + exec("true") + wait + terminate, against bare `bwrap ... /bin/true`.

Bar (issue 2): median at most 2x bare bwrap. The sandboxes have block_network=True,
like the baseline's --unshare-all (benchmarks/bench_network.py prices the default
network). Reported twice: with Modal's default
`terminate()` (teardown finishes in the background, in the supervisor) and with
`terminate(wait=True)` (returns once teardown is complete). Runs are interleaved
with the baseline so both see the same machine load.
"""

import statistics
import sys

import pysandbox as modal
from _common import timed, app, bare_bwrap_argv, report, spawn_and_wait

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def lifecycle(the_app, wait):
    sb = modal.Sandbox.create(app=the_app, block_network=True)
    sb.exec("true").wait()
    sb.terminate(wait=wait)


def main():
    the_app = app()
    argv = bare_bwrap_argv()
    samples = {"bare": [], "terminate()": [], "terminate(wait=True)": []}
    for i in range(RUNS + 5):
        bare = timed(lambda: spawn_and_wait(argv))
        nowait = timed(lambda: lifecycle(the_app, False))
        waited = timed(lambda: lifecycle(the_app, True))
        if i >= 5:  # warm-up
            samples["bare"].append(bare)
            samples["terminate()"].append(nowait)
            samples["terminate(wait=True)"].append(waited)
    baseline = statistics.median(samples["bare"])
    for name in ("terminate()", "terminate(wait=True)"):
        report(f"create+exec(true)+wait+{name}", statistics.median(samples[name]), "bare bwrap /bin/true",
               baseline, bar=2.0)


if __name__ == "__main__":
    main()
