"""A long exec loop, as a service that runs for weeks does it: every thousand execs it prints
this process's open fds, its RSS, the exec handles still alive and the processes left in
the sandbox, which must all stay flat. Three ways of using each exec: dropped with its
output unread (the process is blocked on a full pipe), wait() only (output kept for a read
that never comes), and read everything then wait. The cyclic garbage collector is off:
nothing may depend on it.

Baseline, in the same run: subprocess.Popen of the same command on the host, dropped
unread, or read with communicate() (its wait() alone would deadlock); the ratio is the
median time per exec. (A dropped Popen whose child is blocked on a full pipe keeps both
pipes open for ever: the baseline prints that leak, then ends those children.)

Usage: bench_exec_soak.py [EXECS] [RUNNER...]   (default 10,000 per way of use, both runners)
"""

import gc
import os
import statistics
import subprocess
import sys
import time

import psutil
from _common import RUNNERS, app

import pysandbox as modal
from pysandbox import _fork

EXECS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
CHOSEN = tuple(sys.argv[2:]) or RUNNERS
FLOOD = "head -c 200000 /dev/zero >&2; head -c 200000 /dev/zero"

USES = {
    "dropped unread": lambda p: None,
    "wait() only": lambda p: p.wait(),
    "read, then wait()": lambda p: (p.stdout.read(), p.stderr.read(), p.wait()),
}
HOST_USES = {
    "dropped unread": lambda p: None,
    "wait() only": lambda p: p.communicate(),
    "read, then wait()": lambda p: p.communicate(),
}


def fds():
    return len(os.listdir("/proc/self/fd"))


def rss_mib():
    return psutil.Process().memory_info().rss / (1 << 20)


def processes_in(sb):
    try:
        return len(psutil.Process(sb._record.supervisor.pid).children(recursive=True))
    except psutil.Error:
        return 0


def timed_loop(start, use, count, report=None):
    """Median ms per exec of `use(start())`, `count` times; `report(i)` after every thousand."""
    samples = []
    for i in range(1, count + 1):
        began = time.perf_counter()
        use(start())
        samples.append((time.perf_counter() - began) * 1000)
        if report is not None and i % 1000 == 0:
            report(i)
    return statistics.median(samples)


def soak(runner, name, use):
    sb = modal.Sandbox.create(app=app(), experimental_options={"runner": runner})
    try:
        sb.exec("true").wait()
        start = {"fds": fds(), "rss": rss_mib(), "handles": len(_fork._live), "processes": processes_in(sb)}
        print(f"{runner}, {name}: at the start {start['fds']} fds, RSS {start['rss']:.1f} MiB, "
              f"{start['processes']} processes in the sandbox", flush=True)

        def report(i):
            print(f"  {i:>6} execs: fds {fds() - start['fds']:+d}, RSS {rss_mib() - start['rss']:+.1f} MiB, "
                  f"handles alive {len(_fork._live) - start['handles']:+d}, processes left in the sandbox "
                  f"{processes_in(sb) - start['processes']:+d}", flush=True)

        per_exec = timed_loop(lambda: sb.exec("sh", "-c", FLOOD, text=False), use, EXECS, report)
        time.sleep(0.5)  # the last processes die of SIGPIPE
        report(EXECS)
        return per_exec
    finally:
        sb.terminate(wait=True)


_host_pids = []


def host_popen():
    p = subprocess.Popen(["sh", "-c", FLOOD], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _host_pids.append(p.pid)
    return p


def end_host_leftovers():
    """A dropped Popen whose child still runs stays in subprocess's list, pipes open: the child,
    blocked on a full pipe, never ends. End ours, so that they do not load the machine."""
    for pid in _host_pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    _host_pids.clear()
    subprocess.Popen(["true"]).wait()  # lets subprocess reap (and forget) the ones it kept
    gc.collect()


def main():
    host = {}
    for name, use in HOST_USES.items():
        before = fds()
        host[name] = timed_loop(host_popen, use, min(EXECS, 2000))
        gc.collect()
        print(f"host baseline, {name}: {min(EXECS, 2000)} subprocess.Popen, fds {fds() - before:+d}", flush=True)
        end_host_leftovers()
    gc.disable()
    for runner in CHOSEN:
        for name, use in USES.items():
            ours = soak(runner, name, use)
            print(f"{runner}, {name}: median {ours:.3f} ms per exec; subprocess.Popen on the host "
                  f"({'communicate()' if name != 'dropped unread' else name}): {host[name]:.3f} ms; "
                  f"ratio {ours / host[name]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
