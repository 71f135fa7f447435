"""Host memory of idle sandboxes, 1,000 of them at once, against as many idle bare
`bwrap ... sleep` (the same namespaces, no supervisor, init or cgroup).

Two views of each set: the user-space memory only its processes hold (USS of supervisor +
bwrap + init, median per sandbox), and the whole host's cost, kernel included (cgroups,
namespaces, page tables, kernel stacks, mounts): /proc/meminfo's MemAvailable, Slab,
PageTables and KernelStack before the set starts and once all of it is up, divided by the
count. The /proc/meminfo figures see the whole machine: other work running meanwhile
shows in them (run on a quiet machine; the bare set is measured the same way, just before).

Bar (issue 19): at most 1.5 MB of host memory per idle sandbox, by MemAvailable. The
sandboxes have block_network=True, like the baseline; the default network's slirp4netns
is reported on its own, over a few sandboxes.

1,000 sandboxes are 3,000 host processes and 1,000 each of the namespaces and cgroups:
root's defaults here allow them (RLIMIT_NPROC, pid_max 32768, user.max_*_namespaces). The
creating process holds no descriptor per idle sandbox, so RLIMIT_NOFILE does not bound it.

Usage: bench_idle_memory.py [COUNT]   (default 1000)
"""

import statistics
import subprocess
import sys
import time

import psutil
from _common import app, bare_bwrap_argv

import pysandbox as modal

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
FIELDS = ("MemAvailable", "Slab", "PageTables", "KernelStack")
BAR_KB = 1536


def meminfo():
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, value = line.split(":", 1)
            if name in FIELDS:
                values[name] = int(value.split()[0])
    return values


def per_item_kb(before, after, count):
    """Per-item cost, kB, of each /proc/meminfo field (MemAvailable's drop as a cost)."""
    return {name: (before[name] - after[name] if name == "MemAvailable" else after[name] - before[name]) / count
            for name in FIELDS}


def unique_kb(procs):
    """USS (memory only this process holds) summed, in kB."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().uss
        except psutil.Error:
            pass
    return total / 1024


def tree(pid):
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def settle():
    time.sleep(1)  # let the processes just started finish their start-up and the kernel its deferred frees


def bare_set(count):
    """(median USS kB, per-item /proc/meminfo kB) of `count` idle bare bwrap+sleep."""
    settle()
    before = meminfo()
    bares = [subprocess.Popen(bare_bwrap_argv(("/bin/sleep", "3600"))) for _ in range(count)]
    try:
        settle()
        after = meminfo()
        uss = statistics.median(unique_kb(tree(p.pid)) for p in bares[: min(count, 100)])
        return uss, per_item_kb(before, after, count)
    finally:
        for p in bares:  # bwrap and the pid namespace's own bwrap below it, which outlives a killed parent
            for proc in reversed(tree(p.pid)):
                proc.kill()
        for p in bares:
            p.wait()


def sandbox_set(the_app, count, **options):
    """(median USS kB, per-item /proc/meminfo kB, how many ran at once) of `count` idle sandboxes."""
    settle()
    before = meminfo()
    sandboxes = []
    try:
        for _ in range(count):
            sandboxes.append(modal.Sandbox.create(app=the_app, **options))
        for sb in sandboxes:  # make sure each one is up and serving
            assert sb.exec("true").wait() == 0
        settle()
        after = meminfo()
        running = sum(1 for sb in sandboxes if sb.poll() is None)
        uss = statistics.median(unique_kb(tree(sb._record.supervisor.pid)) for sb in sandboxes[: min(count, 100)])
        return uss, per_item_kb(before, after, count), running
    finally:
        for sb in sandboxes:
            sb.terminate()
        for sb in sandboxes:
            sb.wait(raise_on_termination=False)


def fields(kb):
    return ", ".join(f"{name} {value:.0f}" for name, value in kb.items())


def main():
    bare_uss, bare_kb = bare_set(COUNT)
    the_app = app()
    uss, kb, running = sandbox_set(the_app, COUNT, block_network=True)
    host = kb["MemAvailable"]
    print(f"idle sandboxes, {running}/{COUNT} running at once: host memory per sandbox (MemAvailable drop) "
          f"{host:.0f} kB; bare bwrap+sleep: {bare_kb['MemAvailable']:.0f} kB; ratio "
          f"{host / bare_kb['MemAvailable']:.2f}x (bar: <= {BAR_KB} kB: {'ok' if host <= BAR_KB else 'MISSED'})")
    print(f"  per sandbox, kB: {fields(kb)}; USS of supervisor+bwrap+init: median {uss:.0f}")
    print(f"  per bare bwrap+sleep, kB: {fields(bare_kb)}; USS of bwrap+sleep: median {bare_uss:.0f}")
    networked_uss, networked_kb, _ = sandbox_set(the_app, 10)
    print(f"with the default network (+ slirp4netns), over 10: USS median {networked_uss:.0f} kB, MemAvailable drop "
          f"{networked_kb['MemAvailable']:.0f} kB per sandbox; bare bwrap+sleep: USS {bare_uss:.0f} kB; ratio "
          f"{networked_uss / bare_uss:.2f}x (USS)")


if __name__ == "__main__":
    main()
