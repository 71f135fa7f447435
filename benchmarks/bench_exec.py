"""exec("true") + wait in a running sandbox under each runner, side by side, against
subprocess.run(["/bin/true"]) (exec does not go through the runner: sandbox-init starts
the process, so the baseline is the same for both).

Bar (issue 2): median at most 1.5x subprocess.run.
"""

import subprocess
import sys

from _common import RUNNERS, app, median_ms, report

import pysandbox as modal

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 500


def main():
    sandboxes = {runner: modal.Sandbox.create(app=app(), experimental_options={"runner": runner})
                 for runner in RUNNERS}
    try:
        baseline = median_ms(lambda: subprocess.run(["/bin/true"]), RUNS)
        ours = {runner: median_ms(lambda: sb.exec("true").wait(), RUNS) for runner, sb in sandboxes.items()}
        for runner in RUNNERS:
            report(f"{runner}: exec(true)+wait", ours[runner], "subprocess.run(/bin/true)", baseline, bar=1.5)
        report("nsjail vs bwrap: exec(true)+wait", ours["nsjail"], "the same under bwrap", ours["bwrap"])
    finally:
        for sb in sandboxes.values():
            sb.terminate(wait=True)


if __name__ == "__main__":
    main()
