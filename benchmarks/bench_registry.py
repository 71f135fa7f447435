"""Finding sandboxes: from_id + exec from a second process, Sandbox.list over 1,000 running,
from_name.

Bars (issue 19): in a process other than the creator, from_id + exec("true") + wait within
1.3x of exec("true") + wait on a handle that process already holds (the two interleaved);
Sandbox.list with 1,000 sandboxes running (and DEAD finished ones beside them) under 30 ms,
against the floor of any listing: one scandir of the sandboxes directory and one stat per
sandbox; from_name under 5 ms.
The sandboxes have block_network=True: 1,000 network helpers starting at once would load
the machine the listing is timed on.

Usage: bench_registry.py [RUNNING] [DEAD]   (default 1000 running, 200 finished)
"""

import os
import subprocess
import sys
import time

from _common import app, interleaved, median_ms, report

import pysandbox as modal
from pysandbox._state import paths

RUNNING = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
DEAD = int(sys.argv[2]) if len(sys.argv) > 2 else 200
SETTLE_S = 10

# Run in a second process: the sandbox's id in argv[1].
SECOND_PROCESS = """
import subprocess, sys
sys.path.insert(0, {benchmarks!r})
from _common import interleaved, report
import pysandbox as modal
sandbox_id = sys.argv[1]
held = modal.Sandbox.from_id(sandbox_id)
medians = interleaved({{
    "fresh": lambda: modal.Sandbox.from_id(sandbox_id).exec("true").wait(),
    "held": lambda: held.exec("true").wait(),
    "subprocess": lambda: subprocess.run(["/bin/true"]),
}}, 500, warmup=20)
report("second process: from_id + exec(true) + wait", medians["fresh"],
       "exec(true) + wait on a handle it holds", medians["held"], bar=1.3)
report("second process: from_id + exec(true) + wait", medians["fresh"], "subprocess.run(/bin/true)",
       medians["subprocess"])
"""


def listing_floor():
    """What any listing must do: read the directory, look at each sandbox's record once."""
    with os.scandir(paths.sandboxes_dir()) as entries:
        for entry in entries:
            try:
                os.stat(os.path.join(entry.path, paths.RECORD_NAME))
            except FileNotFoundError:
                pass


def main():
    the_app = app()
    named = modal.Sandbox.create(app=the_app, name="bench-named", block_network=True)
    sandboxes = []
    try:
        code = SECOND_PROCESS.format(benchmarks=os.path.dirname(os.path.abspath(__file__)))
        subprocess.run([sys.executable, "-c", code, named.object_id], check=True)

        for i in range(RUNNING - 1 + DEAD):
            sandboxes.append(modal.Sandbox.create(app=the_app, tags={"i": str(i % 10)}, block_network=True))
        for sb in sandboxes[:DEAD]:
            sb.terminate()
        for sb in sandboxes[:DEAD]:
            sb.wait(raise_on_termination=False)
        time.sleep(SETTLE_S)  # 1,000 supervisors and inits finishing their start-up would load the timing
        running = len(list(modal.Sandbox.list(app_id=the_app.app_id)))
        medians = interleaved({
            "list": lambda: list(modal.Sandbox.list(app_id=the_app.app_id)),
            "tagged": lambda: list(modal.Sandbox.list(app_id=the_app.app_id, tags={"i": "3"})),
            "floor": listing_floor,
        }, 30, warmup=2)
        listed = medians["list"]
        report(f"Sandbox.list over {running} running ({DEAD} finished beside them)", listed,
               "scandir + a stat per sandbox", medians["floor"])
        print(f"Sandbox.list: median {listed:.2f} ms; with a tag filter {medians['tagged']:.2f} ms "
              f"(bar: < 30 ms: {'ok' if listed < 30 else 'MISSED'})", flush=True)
        by_name = median_ms(lambda: modal.Sandbox.from_name("benchmarks", "bench-named"), 300)
        print(f"Sandbox.from_name: median {by_name:.3f} ms (bar: < 5 ms: {'ok' if by_name < 5 else 'MISSED'})")
    finally:
        for sb in [named, *sandboxes]:
            sb.terminate()
        for sb in [named, *sandboxes]:
            sb.wait(raise_on_termination=False)


if __name__ == "__main__":
    main()
