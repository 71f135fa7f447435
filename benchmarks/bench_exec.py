"""exec("true") + wait in a running sandbox under each runner, side by side, against
subprocess.run(["/bin/true"]) (exec does not go through the runner: sandbox-init starts
the process, so the baseline is the same for both). The three run interleaved, so that
all see the same machine load.

Bar (issue 19): median at most 1.1x subprocess.run.

Usage: bench_exec.py [RUNS]   (default 1000)
"""

import subprocess
import sys

from _common import RUNNERS, app, interleaved, report

import pysandbox as modal

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


def main():
    sandboxes = {runner: modal.Sandbox.create(app=app(), experimental_options={"runner": runner})
                 for runner in RUNNERS}
    try:
        funcs = {"subprocess": lambda: subprocess.run(["/bin/true"])}
        funcs.update({runner: (lambda sb=sb: sb.exec("true").wait()) for runner, sb in sandboxes.items()})
        medians = interleaved(funcs, RUNS, warmup=20)
        for runner in RUNNERS:
            report(f"{runner}: exec(true)+wait", medians[runner], "subprocess.run(/bin/true)", medians["subprocess"],
                   bar=1.1)
        report("nsjail vs bwrap: exec(true)+wait", medians["nsjail"], "the same under bwrap", medians["bwrap"])
    finally:
        for sb in sandboxes.values():
            sb.terminate(wait=True)


if __name__ == "__main__":
    main()
