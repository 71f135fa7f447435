"""Matrix 19: registry races. Many processes create the same name at once (exactly one wins);
many create, list, tag and terminate at once (no record lost or torn); garbage collection runs
against busy clients (none of them fails: issue 12, item 9); terminate() right after create,
or cut short by the caller's death (nothing left behind, nothing hidden: item 11)."""

import json
import os
import signal
import textwrap
import time

import pytest

import pysandbox as modal
from pysandbox import garbage
from pysandbox._state import paths, records
from pysandbox.runtime import launch

from ._statedir import assert_left_nothing, python, run_all, stray_sandbox_processes

pytestmark = pytest.mark.rootless

RACE_NAME = textwrap.dedent(
    """
    import sys, time
    import pysandbox as modal
    from pysandbox.exception import AlreadyExistsError
    app = modal.App.lookup("race-app", create_if_missing=True)
    start = float(sys.argv[1])
    time.sleep(max(0, start - time.time()))
    try:
        sb = modal.Sandbox.create("sleep", "60", app=app, name="contested", timeout=60)
        print("won", sb.object_id)
    except AlreadyExistsError:
        print("lost")
    """
)

CHURN = textwrap.dedent(
    """
    import json, sys
    import pysandbox as modal
    app = modal.App.lookup("churn-app", create_if_missing=True)
    worker = sys.argv[1]
    made = []
    for i in range(10):
        sb = modal.Sandbox.create(app=app, tags={"worker": worker}, timeout=120)
        sb.set_tags({"worker": worker, "i": str(i)})
        made.append(sb.object_id)
        listed = {s.object_id for s in modal.Sandbox.list(app_id=app.app_id, tags={"worker": worker})}
        assert set(made[-1:]) <= listed, "own sandbox missing from list"
        if i % 2:
            sb.terminate()
    print(json.dumps(made))
    """
)


def test_fifty_processes_race_for_one_name():
    start = time.time() + 3
    outs = run_all(RACE_NAME, [[str(start)]] * 50)
    winners = [o.split()[1] for o in outs if o.startswith("won")]
    assert len(winners) == 1, outs
    assert sum(o.strip() == "lost" for o in outs) == 49
    app = modal.App.lookup("race-app")
    assert [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)] == winners
    modal.Sandbox.from_id(winners[0]).terminate(wait=True)


def test_twenty_processes_churn_two_hundred_sandboxes():
    outs = run_all(CHURN, [[str(w)] for w in range(20)])
    made = [sid for out in outs for sid in json.loads(out)]
    assert len(made) == 200 and len(set(made)) == 200
    app = modal.App.lookup("churn-app")
    running = {sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)}
    expected_running = {sid for out in outs for i, sid in enumerate(json.loads(out)) if i % 2 == 0}
    assert running == expected_running
    for sid in made:  # every record intact and readable
        record = records.read_record(sid)
        assert record.tags["worker"] in {str(w) for w in range(20)}
    for sid in running:
        modal.Sandbox.from_id(sid).terminate()
    for sid in made:
        modal.Sandbox.from_id(sid).wait(raise_on_termination=False)
        assert not (paths.sandbox_dir(sid) / "upper").exists()
    assert not stray_sandbox_processes(made)


# Garbage collection against busy clients (item 9) ----------------------------------------

SOAK_SECONDS = 40

CLIENT = """
import json, sys, time, traceback
import pysandbox as modal
app = modal.App.lookup("soak-app", create_if_missing=True)
worker, until = sys.argv[1], float(sys.argv[2])
done, failures, made = 0, [], []

def check(ok, what):
    if not ok:
        raise AssertionError(what)

i = 0
while time.time() < until:
    i += 1
    try:
        name = f"w{worker}-{i}" if i % 3 == 0 else None
        ending = i % 4
        argv = ("sh", "-c", "exit 3") if ending == 3 else ("sleep", "60")
        sb = modal.Sandbox.create(*argv, app=app, name=name, tags={"worker": worker}, timeout=60)
        made.append(sb.object_id)
        if ending == 3:  # it ends by itself; gc may take its directory before we look
            sb.wait()
            check(sb.returncode == 3, f"{sb.object_id} returned {sb.returncode}, not 3")
        else:
            sb.set_tags({"worker": worker, "i": str(i)})
            listed = {s.object_id for s in modal.Sandbox.list(app_id=app.app_id, tags={"worker": worker})}
            check(sb.object_id in listed, f"{sb.object_id} missing from list()")
            if name is not None:
                check(modal.Sandbox.from_name("soak-app", name).object_id == sb.object_id, "from_name")
            check(modal.Sandbox.from_id(sb.object_id).poll() is None, "from_id().poll()")
            if ending == 0:
                check(sb.terminate(wait=True) == 137, "terminate(wait=True)")
            elif ending == 1:
                sb.terminate()
                sb.wait(raise_on_termination=False)
                check(sb.returncode == 137, "terminate(), then wait()")
            else:
                modal.Sandbox.from_id(sb.object_id).terminate()
                while sb.poll() is None:
                    time.sleep(0.01)
                check(sb.returncode == 137, "terminate() from another handle, then poll()")
        done += 1
    except Exception:
        failures.append(traceback.format_exc())
print(json.dumps({"done": done, "failures": failures, "made": made}))
"""

LISTER = """
import contextlib, io, json, sys, time, traceback
import pysandbox as modal
from pysandbox import cli
app = modal.App.lookup("soak-app", create_if_missing=True)
until = float(sys.argv[1])
done, failures = 0, []
while time.time() < until:
    try:
        list(modal.Sandbox.list(app_id=app.app_id))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["ls", "--all", "--json"]) == 0
        json.loads(out.getvalue())
        done += 1
    except Exception:
        failures.append(traceback.format_exc())
print(json.dumps({"done": done, "failures": failures}))
"""

COLLECTOR = """
import json, sys, time, traceback
from pysandbox import garbage
until = float(sys.argv[1])
rounds, removed, problems, failures = 0, 0, [], []
while time.time() < until:
    try:
        found = garbage.collect()  # on demand: finished sandboxes go at once
        rounds += 1
        removed += len(found.sandboxes)
        problems += found.problems + found.notes
    except Exception:
        failures.append(traceback.format_exc())
print(json.dumps({"rounds": rounds, "removed": removed, "problems": problems, "failures": failures}))
"""


@pytest.mark.timeout(600)
def test_gc_against_busy_clients_fails_none_of_them():
    until = time.time() + SOAK_SECONDS
    clients = [python(CLIENT, worker, until, stdout=-1, text=True) for worker in range(5)]
    others = [python(LISTER, until, stdout=-1, text=True)] + [python(COLLECTOR, until, stdout=-1, text=True)
                                                             for _ in range(2)]
    results = [json.loads(p.communicate(timeout=SOAK_SECONDS + 240)[0]) for p in clients + others]
    client_results, lister, collectors = results[:5], results[5], results[6:]
    failures = [f for r in results for f in r["failures"]]
    assert failures == [], "\n".join(failures[:5])
    assert all(r["done"] >= 4 for r in client_results), [r["done"] for r in client_results]  # it did work
    assert lister["done"] > 0 and sum(c["rounds"] for c in collectors) > 10
    assert sum(c["removed"] for c in collectors) > 0 and [p for c in collectors for p in c["problems"]] == []
    made = [sid for r in client_results for sid in r["made"]]
    print(f"soak: {sum(r['done'] for r in client_results)} client cycles ({len(made)} sandboxes), "
          f"{lister['done']} listings, {sum(c['rounds'] for c in collectors)} gc rounds removing "
          f"{sum(c['removed'] for c in collectors)} sandboxes in {SOAK_SECONDS}s: 0 failures")
    assert not stray_sandbox_processes(made)
    garbage.collect()
    assert not [sid for sid in made if paths.sandbox_dir(sid).exists()]


# terminate() right after create, and a terminate() cut short (item 11) --------------------------


def test_create_then_terminate_at_once_leaves_nothing_behind(app):
    # The supervisor starts with SIGTERM blocked, so a terminate() that comes before it has set up
    # its signal handling waits for it instead of killing it before any teardown.
    made = []
    for _ in range(120):
        sb = modal.Sandbox.create("sleep", "60", app=app, block_network=True)
        sb.terminate()
        made.append(sb)
    for sb in made:
        assert_ended_by_its_supervisor(sb)


def assert_ended_by_its_supervisor(sb):
    """The sandbox ended and its own supervisor recorded the end after tearing it down: it was
    not killed first (a supervisor gone without a record reads as `lost`, and terminate() or
    wait() would then have to do the teardown it could not)."""
    deadline = time.time() + 60
    while sb.poll() is None:  # polling never repairs anything
        assert time.time() < deadline, f"{sb.object_id} never ended"
        time.sleep(0.01)
    status = records.finished(sb._record)
    assert not status.lost, f"{sb.object_id}: its supervisor died without recording the end"
    assert records.returncode(status) == 137
    assert_left_nothing(sb.object_id, sb._record)


def test_a_terminate_sent_the_moment_the_supervisor_starts_is_handled(app, monkeypatch):
    spawn = launch._spawn

    def spawn_and_signal(*args, **kwargs):
        launched = spawn(*args, **kwargs)
        pidfd = os.pidfd_open(launched.supervisor.pid)
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        os.close(pidfd)
        return launched

    monkeypatch.setattr(launch, "_spawn", spawn_and_signal)
    for _ in range(20):
        assert_ended_by_its_supervisor(modal.Sandbox.create("sleep", "60", app=app, block_network=True))


CUT_SHORT = """
import os, signal, sys
import pysandbox as modal
from pysandbox._state import paths, records
sb = modal.Sandbox.from_id(sys.argv[1])
die = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[2] == "before signalling":
    signal.pidfd_send_signal = die
else:
    records.mark_terminating = die
sb.terminate()
"""


def test_a_terminate_cut_short_never_hides_a_running_sandbox(app):
    sb = modal.Sandbox.create("sleep", "300", app=app, name="cut-short", block_network=True)
    killed = python(CUT_SHORT, sb.object_id, "before signalling")
    assert killed.wait(60) == -signal.SIGKILL
    # It was never asked to end: it runs on, listed and found by its name.
    assert sb.poll() is None
    assert sb.object_id in [s.object_id for s in modal.Sandbox.list(app_id=app.app_id)]
    assert modal.Sandbox.from_name(app.name, "cut-short").object_id == sb.object_id
    killed = python(CUT_SHORT, sb.object_id, "after signalling")
    assert killed.wait(60) == -signal.SIGKILL
    # Signalled, then the caller died before marking it: it ends anyway and its name is free.
    assert_ended_by_its_supervisor(sb)
    assert not records.terminating(sb.object_id)
    assert sb.object_id not in [s.object_id for s in modal.Sandbox.list(app_id=app.app_id)]
    with pytest.raises(modal.exception.NotFoundError):
        modal.Sandbox.from_name(app.name, "cut-short")
