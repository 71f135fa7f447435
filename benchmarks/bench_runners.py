"""create(block_network=True) + exec("true") + terminate() under each runner
(PYSANDBOX_RUNNER), each against its bare runner running /bin/true: `bwrap ...`
and `nsjail -Mo ...` with the same host directories, /proc and a minimal /dev.
Runs of all four are interleaved so they see the same machine load.
"""

import os
import statistics
import sys

import pysandbox as modal
from _common import timed, app, bare_bwrap_argv, report, spawn_and_wait
from pysandbox import config

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
WARMUP = 5


def bare_nsjail_argv(command=("/bin/true",)):
    argv = [config.nsjail_binary(), "-Mo", "--really_quiet", "--time_limit", "0", "--disable_rlimits",
            "--bindmount_ro", "/usr:/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        path = "/" + name
        if os.path.islink(path):
            argv += ["--symlink", f"{os.readlink(path)}:{path}"]
    return argv + ["--mount", "none:/dev:tmpfs:mode=755", "--bindmount", "/dev/null:/dev/null", "--", *command]


def lifecycle(the_app, runner):
    os.environ["PYSANDBOX_RUNNER"] = runner
    sb = modal.Sandbox.create(app=the_app, block_network=True)
    sb.exec("true").wait()
    sb.terminate()


def main():
    the_app = app()
    bare = {"bwrap": bare_bwrap_argv(), "nsjail": bare_nsjail_argv()}
    samples = {name: [] for name in ("bare bwrap", "bare nsjail", "bwrap", "nsjail")}
    for i in range(RUNS + WARMUP):
        for runner in ("bwrap", "nsjail"):
            took_bare = timed(lambda: spawn_and_wait(bare[runner]))
            took = timed(lambda: lifecycle(the_app, runner))
            if i >= WARMUP:
                samples[f"bare {runner}"].append(took_bare)
                samples[runner].append(took)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for runner in ("bwrap", "nsjail"):
        report(f"runner {runner}: create+exec(true)+terminate()", medians[runner],
               f"bare {runner} /bin/true", medians[f"bare {runner}"])
    report("nsjail vs bwrap: create+exec(true)+terminate()", medians["nsjail"], "the same under bwrap",
           medians["bwrap"])
    report("bare nsjail vs bare bwrap: /bin/true", medians["bare nsjail"], "bare bwrap", medians["bare bwrap"])


if __name__ == "__main__":
    main()
