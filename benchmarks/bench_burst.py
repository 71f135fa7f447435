"""A burst of create -> exec("true") + wait -> terminate(wait=True), from 16 threads of one
process and from 4 processes, in sandboxes per second, against the same burst of bare
`bwrap ... /bin/true` (bare_bwrap_argv) from the same threads or processes.

Each round runs BURST sandboxes per worker set, ours and the bare burst alternately, so both
see the same machine load; the figures are medians over the rounds. The sandboxes have
block_network=True, like bare bwrap's new network namespace (bench_network.py prices the
default network). No bar: the issue asks for the figure and its ratio.

Usage: bench_burst.py [ROUNDS] [BURST]   (default: 5 rounds of 64 sandboxes)
"""

import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from _common import app, bare_bwrap_argv, report, spawn_and_wait

import pysandbox as modal

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
BURST = int(sys.argv[2]) if len(sys.argv) > 2 else 64
SHAPES = {"16 threads": (ThreadPoolExecutor, 16), "4 processes": (ProcessPoolExecutor, 4)}


def sandbox_lifecycles(count):
    """`count` sandboxes, one after the other: what one worker does."""
    the_app = app()
    for _ in range(count):
        sb = modal.Sandbox.create(app=the_app, block_network=True)
        assert sb.exec("true").wait() == 0
        sb.terminate(wait=True)


def bare_lifecycles(count):
    argv = bare_bwrap_argv()
    for _ in range(count):
        spawn_and_wait(argv)


def per_second(pool, workers, func):
    """Sandboxes per second of one burst of BURST, split over the pool's workers."""
    shares = [BURST // workers + (i < BURST % workers) for i in range(workers)]
    start = time.perf_counter()
    for future in [pool.submit(func, share) for share in shares]:
        future.result()
    return BURST / (time.perf_counter() - start)


def main():
    for shape, (executor, workers) in SHAPES.items():
        kwargs = {"mp_context": multiprocessing.get_context("forkserver")} if executor is ProcessPoolExecutor else {}
        with executor(max_workers=workers, **kwargs) as pool:
            for func in (sandbox_lifecycles, bare_lifecycles):  # warm-up: workers started, caches warm
                per_second(pool, workers, func)
            rates = {"ours": [], "bare": []}
            for _ in range(ROUNDS):
                rates["ours"].append(per_second(pool, workers, sandbox_lifecycles))
                rates["bare"].append(per_second(pool, workers, bare_lifecycles))
        ours, bare = statistics.median(rates["ours"]), statistics.median(rates["bare"])
        report(f"burst of {BURST} create+exec(true)+wait+terminate(wait=True) from {shape}", ours,
               "the same burst of bare bwrap /bin/true", bare, unit="sandboxes/s")


if __name__ == "__main__":
    main()
