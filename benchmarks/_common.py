"""Shared bits of the benchmarks: medians over many runs, and the ratio line."""

import atexit
import os
import statistics
import time

import pysandbox as modal
from pysandbox import config, registry

# Finished sandboxes' directories stay until gc; left behind, thousands of them
# would slow down what the next benchmark's Sandbox.list measures.
atexit.register(registry.collect_garbage)


def median_ms(func, runs, warmup=5):
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def timed(func):
    """One call of func, in ms."""
    start = time.perf_counter()
    func()
    return (time.perf_counter() - start) * 1000


def report(name, ours, baseline_name, baseline, unit="ms", bar=None):
    ratio = ours / baseline
    line = f"{name}: median {ours:.3f} {unit}; {baseline_name}: {baseline:.3f} {unit}; ratio {ratio:.2f}x"
    if bar is not None:
        line += f" (bar: <= {bar}x: {'ok' if ratio <= bar else 'MISSED'})"
    print(line, flush=True)
    return ratio


def bare_bwrap_argv(command=("/bin/true",)):
    argv = [config.bwrap_binary(), "--unshare-all", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        path = "/" + name
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
    return argv + ["--proc", "/proc", "--dev", "/dev", *command]


def spawn_and_wait(argv):
    pid = os.posix_spawn(argv[0], argv, os.environ)
    os.waitpid(pid, 0)


def app():
    return modal.App.lookup("benchmarks", create_if_missing=True)
