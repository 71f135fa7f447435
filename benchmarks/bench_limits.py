"""create + exec("true") + terminate(wait=True) with cpu, memory and pids limits,
against the same with no cgroup at all, the default (the pids limit only), and the bare
runner running /bin/true, under each runner side by side, all interleaved in one run so
they see the same machine load.

Bar (issue 6): with limits, median at most 1.3x the same without limits.
block_network=True throughout: the default network's teardown (benchmarks/bench_network.py)
would drown what this measures.
"""

import sys

from _common import RUNNERS, app, bare_bwrap_argv, bare_nsjail_argv, interleaved, report, spawn_and_wait

import pysandbox as modal
from pysandbox import sandbox
from pysandbox.runtime import cgroups

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
LIMITS = {"cpu": (0.5, 1.0), "memory": (128, 256)}


def lifecycle(the_app, runner, options):
    sb = modal.Sandbox.create(app=the_app, block_network=True, experimental_options={"runner": runner}, **options)
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


def variants(the_app, runner):
    bare = {"bwrap": bare_bwrap_argv, "nsjail": bare_nsjail_argv}[runner]()
    return {
        "bare": lambda: spawn_and_wait(bare),
        "no cgroup": lambda: without_cgroups(lambda: lifecycle(the_app, runner, {})),
        "default (pids limit)": lambda: lifecycle(the_app, runner, {}),
        "cpu+memory+pids limits": lambda: lifecycle(the_app, runner, LIMITS),
    }


def main():
    if not cgroups.host().has("memory"):
        sys.exit("bench_limits needs a writable cgroup (run it as root)")
    the_app = app()
    funcs = {(runner, name): func for runner in RUNNERS for name, func in variants(the_app, runner).items()}
    median = interleaved(funcs, RUNS)
    what = "create+exec(true)+terminate(wait=True)"
    for runner in RUNNERS:
        for name in ("no cgroup", "default (pids limit)", "cpu+memory+pids limits"):
            report(f"{runner}: {what}, {name}", median[runner, name], f"bare {runner} /bin/true",
                   median[runner, "bare"])
        limited = median[runner, "cpu+memory+pids limits"]
        report(f"{runner}: {what}, cpu+memory+pids limits", limited, "same without limits (no cgroup)",
               median[runner, "no cgroup"], bar=1.3)
        report(f"{runner}: {what}, cpu+memory+pids limits", limited, "same with the default pids limit only",
               median[runner, "default (pids limit)"], bar=1.3)


if __name__ == "__main__":
    main()
