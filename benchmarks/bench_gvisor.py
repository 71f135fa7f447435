"""The gvisor runner next to bwrap and nsjail (issue 18; docs/RUNNERS.md), all in one run:

* lifecycle: create (host image, block_network=True) + exec("true") + wait + terminate(wait=True), each runner
  against its bare runner running /bin/true (`bwrap ...`, `nsjail -Mo ...`, `runsc --network=none do`, with
  `--rootless` for an unprivileged caller);
* exec: exec("true") + wait in a running sandbox, each runner against bwrap's (aim: gVisor within 2x); and
  with pty=True (every runner: init makes the terminal and relays it);
* stdout throughput: exec("head -c 64M /dev/zero") read in bytes mode;
* files: sb.filesystem.read_bytes of 4 KiB, and of 16 MiB, each runner against bwrap's (gVisor: init relays
  the file, a round trip per 64 KiB; the others pass its descriptor);
* idle memory: USS of an idle sandbox's host processes (supervisor, runner, init; under gVisor also runsc's
  gofer and Sentry, which holds the sandbox's own memory);
* snapshot_filesystem of the same changes (200 small files, 4 MiB, a deletion) in a debian_slim sandbox of
  each runner, against bwrap's (the copy runs under bwrap for every one: image/snapshot.py); and
  snapshot_directory of its 200 files and 4 MiB (gVisor: init streams the tree out, and a bwrap helper
  sandbox makes the layer: image/treestream.py).

Runs of what is compared are interleaved (medians), so they see the same machine load.
Usage: bench_gvisor.py [LIFECYCLE_RUNS] [EXEC_RUNS].
"""

import os
import statistics
import sys
import time

from _common import app, bare_bwrap_argv, bare_nsjail_argv, interleaved, report, spawn_and_wait
from bench_idle_memory import tree, unique_kb

import pysandbox as modal
from pysandbox import settings

RUNNERS = ("bwrap", "nsjail", "gvisor")
LIFECYCLE_RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
EXEC_RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
STREAM_BYTES = 64 << 20
FILE_SIZES = {"4 KiB": 4 << 10, "16 MiB": 16 << 20}
SNAPSHOT_RUNS = 15
SNAPSHOT_CHANGES = "mkdir /srv/tree && cd /srv/tree && for i in $(seq 200); do echo $i > f$i; done && " \
                   "head -c 4194304 /dev/urandom > big && rm /etc/issue"
# Bare runsc for an unprivileged caller: its own rootless mode (without it runsc wants root's cgroups).
_RUNSC_ROOTLESS = ["--rootless"] if os.geteuid() != 0 else []


def create(the_app, runner, *args, **kwargs):
    return modal.Sandbox.create(*args, app=the_app, block_network=True, experimental_options={"runner": runner},
                                **kwargs)


def lifecycle(the_app, runner):
    sb = create(the_app, runner)
    sb.exec("true").wait()
    sb.terminate(wait=True)


def exec_true(sb):
    sb.exec("true").wait()


def stream(sb):
    process = sb.exec("head", "-c", str(STREAM_BYTES), "/dev/zero", text=False)
    moved = sum(len(chunk) for chunk in process.stdout)
    process.wait()
    assert moved == STREAM_BYTES, moved


def main():
    the_app = app()
    bare = {"bwrap": bare_bwrap_argv(), "nsjail": bare_nsjail_argv(),
            "gvisor": [settings.runsc_binary(), *_RUNSC_ROOTLESS, "--network=none", "do", "/bin/true"]}
    funcs = {}
    for runner in RUNNERS:
        funcs["bare", runner] = lambda runner=runner: spawn_and_wait(bare[runner])
        funcs["lifecycle", runner] = lambda runner=runner: lifecycle(the_app, runner)
    medians = interleaved(funcs, LIFECYCLE_RUNS, warmup=3)
    for runner in RUNNERS:
        report(f"{runner}: create+exec(true)+wait+terminate(wait=True)", medians["lifecycle", runner],
               f"bare {runner} /bin/true", medians["bare", runner])
    report("gvisor vs bwrap: create+exec(true)+wait+terminate(wait=True)", medians["lifecycle", "gvisor"],
           "the same under bwrap", medians["lifecycle", "bwrap"])

    sandboxes = {runner: create(the_app, runner, "sleep", "3600") for runner in RUNNERS}
    try:
        execs = interleaved({runner: lambda sb=sb: exec_true(sb) for runner, sb in sandboxes.items()}, EXEC_RUNS)
        for runner in RUNNERS:
            report(f"{runner}: exec(true)+wait", execs[runner], "the same under bwrap", execs["bwrap"],
                   bar=2.0 if runner == "gvisor" else None)
        ptys = interleaved({runner: lambda sb=sb: sb.exec("true", pty=True).wait() for runner, sb in sandboxes.items()},
                           EXEC_RUNS // 3)
        for runner in RUNNERS:
            report(f"{runner}: exec(true, pty=True)+wait", ptys[runner], "the same under bwrap", ptys["bwrap"])
        time.sleep(1)  # idle, before the stream test fills the Sentry's buffers
        memory = {runner: unique_kb(tree(sb._record.supervisor.pid)) for runner, sb in sandboxes.items()}
        for runner in RUNNERS:
            print(f"{runner}: idle sandbox host memory (USS of its host processes, after {EXEC_RUNS} execs): "
                  f"{memory[runner]:.0f} kB; ratio to bwrap {memory[runner] / memory['bwrap']:.2f}x", flush=True)
        streams = interleaved({runner: lambda sb=sb: stream(sb) for runner, sb in sandboxes.items()}, 9, warmup=1)
        for runner in RUNNERS:
            rate = STREAM_BYTES / (streams[runner] / 1000) / 1e6
            print(f"{runner}: stdout of exec(head -c 64M /dev/zero), bytes mode: median {rate:.0f} MB/s "
                  f"({streams[runner]:.1f} ms); ratio to bwrap {streams['bwrap'] / streams[runner]:.2f}x", flush=True)
        files(sandboxes)
    finally:
        for sb in sandboxes.values():
            sb.terminate(wait=True)
    idle = [unique_kb(tree(sb._record.supervisor.pid)) for sb in _idle_gvisor(the_app, 5)]
    print(f"gvisor: idle memory of a fresh sandbox (USS of its host processes, after one exec): median "
          f"{statistics.median(idle):.0f} kB over 5", flush=True)
    snapshots(the_app)


def snapshots(the_app):
    image = modal.Image.debian_slim()
    sandboxes = {runner: create(the_app, runner, "sleep", "3600", image=image) for runner in RUNNERS}
    try:
        for sb in sandboxes.values():
            assert sb.exec("sh", "-c", SNAPSHOT_CHANGES).wait() == 0
        took = interleaved({runner: sb.snapshot_filesystem for runner, sb in sandboxes.items()}, SNAPSHOT_RUNS,
                           warmup=1)
        for runner in RUNNERS:
            report(f"{runner}: snapshot_filesystem (200 files, 4 MiB, a deletion)", took[runner],
                   "the same under bwrap", took["bwrap"])
        took = interleaved({runner: lambda sb=sb: sb.snapshot_directory("/srv/tree")
                            for runner, sb in sandboxes.items()}, SNAPSHOT_RUNS, warmup=1)
        for runner in RUNNERS:
            report(f"{runner}: snapshot_directory (200 files, 4 MiB)", took[runner], "the same under bwrap",
                   took["bwrap"])
    finally:
        for sb in sandboxes.values():
            sb.terminate(wait=True)


def files(sandboxes):
    for label, size in FILE_SIZES.items():
        for sb in sandboxes.values():
            sb.filesystem.write_bytes(bytes(size), "/tmp/bench-file")
        reads = interleaved({runner: lambda sb=sb: sb.filesystem.read_bytes("/tmp/bench-file")
                             for runner, sb in sandboxes.items()}, 200 if size < (1 << 20) else 15, warmup=2)
        for runner in RUNNERS:
            report(f"{runner}: sb.filesystem.read_bytes of {label}", reads[runner], "the same under bwrap",
                   reads["bwrap"])


def _idle_gvisor(the_app, count):
    sandboxes = [create(the_app, "gvisor", "sleep", "3600") for _ in range(count)]
    for sb in sandboxes:
        sb.exec("true").wait()
    time.sleep(1)
    yield from sandboxes
    for sb in sandboxes:
        sb.terminate(wait=True)


if __name__ == "__main__":
    main()
