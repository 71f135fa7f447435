"""exec("true") + wait in a running sandbox, against subprocess.run(["/bin/true"]).

Bar (issue 2): median at most 1.5x subprocess.run.
"""

import subprocess
import sys

import pysandbox as modal
from _common import app, median_ms, report

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 500


def main():
    sb = modal.Sandbox.create(app=app())
    try:
        baseline = median_ms(lambda: subprocess.run(["/bin/true"]), RUNS)
        ours = median_ms(lambda: sb.exec("true").wait(), RUNS)
        report("exec(true)+wait", ours, "subprocess.run(/bin/true)", baseline, bar=1.5)
    finally:
        sb.terminate(wait=True)


if __name__ == "__main__":
    main()
