"""The long version of tests/security/test_19's soak (issue 12, item 9): five clients create, tag,
list, find and terminate sandboxes in a loop, CYCLES each, while a lister (Sandbox.list and
`pysandbox ls`) and two garbage collectors run beside them. It prints every failure (there must be
none) and what each side did.

Baseline, in the same run: the same clients alone, with no lister or collector; the ratio is the
median client cycle with them against without.

Then the long version of test_19's terminate() right after create (item 11): TERMINATED sandboxes,
each terminated as soon as create returned it, and how many of them did not end by their own
supervisor's teardown (there must be none).

Under the runner PYSANDBOX_RUNNER names (bwrap by default).

Usage: bench_registry_soak.py [CYCLES] [TERMINATED]   (default 150 per client: 750 sandboxes a phase; 500)
"""

import statistics
import sys
import tempfile
from pathlib import Path

from _common import app, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.security.test_19_registry_races import (  # noqa: E402 (the tree's tests, on the path above)
    assert_ended_by_its_supervisor,
    create_then_terminate,
    run_soak,
)

CYCLES = int(sys.argv[1]) if len(sys.argv) > 1 else 150
TERMINATED = int(sys.argv[2]) if len(sys.argv) > 2 else 500


def phase(busy):
    """The median client cycle in ms, after printing what the phase did and its failures."""
    with tempfile.TemporaryDirectory() as temp:
        results = run_soak(Path(temp) / "stop", CYCLES, busy=busy)
    clients, others = results[:5], results[5:]
    failures = [f for r in results for f in r["failures"]]
    cycles = [ms for r in clients for ms in r["cycle_ms"]]
    line = f"{'busy' if busy else 'alone'}: {sum(r['done'] for r in clients)} client cycles"
    if busy:
        line += (f", {others[0]['done']} listings, {sum(c['rounds'] for c in others[1:])} gc rounds removing "
                 f"{sum(c['removed'] for c in others[1:])} sandboxes, gc problems: "
                 f"{[p for c in others[1:] for p in c['problems']]}")
    print(f"{line}; {len(failures)} failures", flush=True)
    for failure in failures[:5]:
        print(failure, flush=True)
    return statistics.median(cycles)


def terminated_at_once():
    failures = []
    for sb in create_then_terminate(app(), TERMINATED):
        try:
            assert_ended_by_its_supervisor(sb)
        except AssertionError as exc:
            failures.append(str(exc))
    print(f"{TERMINATED} sandboxes terminated as soon as created: {len(failures)} not ended by their own "
          f"supervisor's teardown {failures[:5]}", flush=True)


def main():
    alone = phase(busy=False)
    busy = phase(busy=True)
    report("client cycle beside a lister and two collectors", busy, "the same clients alone", alone)
    terminated_at_once()


if __name__ == "__main__":
    main()
