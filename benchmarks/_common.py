"""Shared bits of the benchmarks: medians over many runs, and the ratio line."""

import atexit
import os
import shutil
import signal
import statistics
import time

import pysandbox as modal
from pysandbox import garbage, settings

# Finished sandboxes' directories stay until gc; left behind, thousands of them
# would slow down what the next benchmark's Sandbox.list measures.
atexit.register(garbage.collect)


# Where the host baselines of the stream benchmarks keep their file: a tmpfs, as the sandbox's /tmp
# is, so that host and sandbox read the same kind of pages (in one run here, a sparse file read at
# 0.9x the same bytes written out on ext4, and at 1.5x on tmpfs).
HOST_TMPFS = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"


def median_ms(func, runs, warmup=5):
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def interleaved(funcs, runs, warmup=5, rotate=False):
    """Median ms of each function (a dict of them), run in turn `runs` times after a warm-up,
    so that all of them see the same machine load. `rotate`: each round starts one function
    later, so that none always runs right after the same other (what one leaves behind, such
    as a process's exit or a hang-up to handle, lands on the next one's time)."""
    samples = {key: [] for key in funcs}
    items = list(funcs.items())
    for i in range(runs + warmup):
        start = i % len(items) if rotate else 0
        for key, func in items[start:] + items[:start]:
            elapsed = timed(func)
            if i >= warmup:
                samples[key].append(elapsed)
    return {key: statistics.median(values) for key, values in samples.items()}


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
    argv = [settings.bwrap_binary(), "--unshare-all", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        path = "/" + name
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
    return argv + ["--proc", "/proc", "--dev", "/dev", *command]


def bare_nsjail_argv(command=("/bin/true",)):
    """The nsjail counterpart of bare_bwrap_argv: the same host directories and a minimal /dev."""
    argv = [settings.nsjail_binary(), "-Mo", "--really_quiet", "--time_limit", "0", "--disable_rlimits",
            "--bindmount_ro", "/usr:/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        path = "/" + name
        if os.path.islink(path):
            argv += ["--symlink", f"{os.readlink(path)}:{path}"]
    return argv + ["--mount", "none:/dev:tmpfs:mode=755", "--bindmount", "/dev/null:/dev/null", "--", *command]


def spawn_and_wait(argv):
    pid = os.posix_spawn(argv[0], argv, os.environ)
    os.waitpid(pid, 0)


def bare_teardown_ms(argv_of):
    """The kernel's own teardown of a bare runner's namespaces, in ms: the runner started on
    `sh -c 'echo ready; exec sleep 1000'` (argv_of(command) gives its argv), once it said ready
    its direct child (the namespace's pid 1) killed with SIGKILL, timed until the runner exits."""
    read, write = os.pipe()
    argv = argv_of(("/bin/sh", "-c", "echo ready; exec sleep 1000"))
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, write, 1)])
    os.close(write)
    with os.fdopen(read) as ready:
        ready.readline()
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        child = int(children.read().split()[0])
    start = time.perf_counter()
    os.kill(child, signal.SIGKILL)
    os.waitpid(pid, 0)
    return (time.perf_counter() - start) * 1000


RUNNERS = ("bwrap", "nsjail")


def runners_here():
    """bwrap and nsjail; gVisor too where it runs (root, runsc)."""
    gvisor = os.geteuid() == 0 and shutil.which(os.environ.get("PYSANDBOX_RUNSC", "runsc")) is not None
    return RUNNERS + (("gvisor",) if gvisor else ())


def app():
    return modal.App.lookup("benchmarks", create_if_missing=True)
