"""Finding sandboxes: from_id + exec from a fresh handle, Sandbox.list over 500, from_name.

Bars (issue 3): from_id + exec("true") + wait within 1.5x of exec on the creating
handle; Sandbox.list with 500 sandboxes registered (running and dead) under 50 ms;
from_name under 5 ms. The 500 have block_network=True: 500 network helpers starting at
once would load the machine the listing is timed on.
"""

import sys

from _common import app, median_ms, report

import pysandbox as modal

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 500


def main():
    the_app = app()
    named = modal.Sandbox.create(app=the_app, name="bench-named")
    sandboxes = []
    try:
        on_creator = median_ms(lambda: named.exec("true").wait(), 300)
        fresh = median_ms(lambda: modal.Sandbox.from_id(named.object_id).exec("true").wait(), 300)
        report("from_id + exec(true) + wait", fresh, "exec(true) + wait on the creating handle", on_creator, bar=1.5)

        for i in range(COUNT - 1):
            sb = modal.Sandbox.create(app=the_app, tags={"i": str(i % 10)}, block_network=True)
            sandboxes.append(sb)
            if i % 2:
                sb.terminate()  # half of them dead: list must skip them
        for sb in sandboxes:
            sb.wait(raise_on_termination=False) if sb.poll() is not None else None
        listed = median_ms(lambda: list(modal.Sandbox.list(app_id=the_app.app_id)), 30, warmup=2)
        tagged = median_ms(lambda: list(modal.Sandbox.list(app_id=the_app.app_id, tags={"i": "3"})), 30, warmup=2)
        by_name = median_ms(lambda: modal.Sandbox.from_name("benchmarks", "bench-named"), 300)
        running = len(list(modal.Sandbox.list(app_id=the_app.app_id)))
        print(f"Sandbox.list over {COUNT} registered ({running} running): median {listed:.2f} ms; "
              f"with a tag filter {tagged:.2f} ms (bar: < 50 ms: {'ok' if listed < 50 else 'MISSED'})")
        print(f"Sandbox.from_name: median {by_name:.3f} ms (bar: < 5 ms: {'ok' if by_name < 5 else 'MISSED'})")
    finally:
        for sb in [named, *sandboxes]:
            sb.terminate()
        for sb in [named, *sandboxes]:
            sb.wait(raise_on_termination=False)


if __name__ == "__main__":
    main()
