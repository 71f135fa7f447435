"""create + exec("true") + terminate(wait=True) with cpu, memory and pids limits,
against the same with no cgroup at all, the default (the pids limit only), and bare
`bwrap ... /bin/true`, all interleaved in one run so they see the same machine load.

Bar (issue 6): with limits, median at most 1.3x the same without limits.
block_network=True throughout: the default network's teardown (benchmarks/bench_network.py)
would drown what this measures.
"""

import statistics
import sys
import time

import pysandbox as modal
from _common import app, bare_bwrap_argv, report, spawn_and_wait
from pysandbox import sandbox
from pysandbox.runtime import cgroups

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
LIMITS = {"cpu": (0.5, 1.0), "memory": (128, 256)}


def lifecycle(the_app, options):
    sb = modal.Sandbox.create(app=the_app, block_network=True, **options)
    sb.exec("true").wait()
    sb.terminate(wait=True)


def without_cgroups(func):
    """Run func as on a host where no cgroup is writable and no pids limit is asked for."""
    host, pids = cgroups.host, sandbox.default_pids_limit
    cgroups.host = lambda: cgroups.Host(0, {}, "benchmark baseline")
    sandbox.default_pids_limit = lambda: None
    try:
        func()
    finally:
        cgroups.host, sandbox.default_pids_limit = host, pids


def timed(func):
    start = time.perf_counter()
    func()
    return (time.perf_counter() - start) * 1000


def main():
    if not cgroups.host().has("memory"):
        sys.exit("bench_limits needs a writable cgroup (run it as root)")
    the_app = app()
    argv = bare_bwrap_argv()
    variants = {
        "bare bwrap /bin/true": lambda: spawn_and_wait(argv),
        "no cgroup": lambda: without_cgroups(lambda: lifecycle(the_app, {})),
        "default (pids limit)": lambda: lifecycle(the_app, {}),
        "cpu+memory+pids limits": lambda: lifecycle(the_app, LIMITS),
    }
    samples = {name: [] for name in variants}
    for i in range(RUNS + 5):
        for name, func in variants.items():
            elapsed = timed(func)
            if i >= 5:  # warm-up
                samples[name].append(elapsed)
    median = {name: statistics.median(values) for name, values in samples.items()}
    for name in ("no cgroup", "default (pids limit)", "cpu+memory+pids limits"):
        report(f"create+exec(true)+terminate(wait=True), {name}", median[name], "bare bwrap /bin/true",
               median["bare bwrap /bin/true"])
    report("create+exec(true)+terminate(wait=True), cpu+memory+pids limits", median["cpu+memory+pids limits"],
           "same without limits (no cgroup)", median["no cgroup"], bar=1.3)
    report("create+exec(true)+terminate(wait=True), cpu+memory+pids limits", median["cpu+memory+pids limits"],
           "same with the default pids limit only", median["default (pids limit)"], bar=1.3)


if __name__ == "__main__":
    main()
