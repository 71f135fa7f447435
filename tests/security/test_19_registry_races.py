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

# The racers of a script that ends with this: one interpreter imports the library once (fifty imports
# would cost the machine more than the race itself) and forks argv[1] processes, each its own from then
# on, that wait on a pipe the parent closes once all are forked, so that they start together. Each
# writes the line its work(i) returns, or its traceback (and then fails the script).
FORKED = """
import os, sys, traceback
start, go = os.pipe()
racers = []
for i in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        os.close(go)
        os.read(start, 1)  # end of file: the parent closed its end
        code = 0
        try:
            line = work(i)
        except BaseException:
            code, line = 1, traceback.format_exc()
        os.write(1, (line + "\\n").encode())  # one write: the racers' lines never mix
        os._exit(code)
    racers.append(pid)
os.close(go)
failed = [pid for pid in racers if os.waitpid(pid, 0)[1] != 0]
sys.exit(1 if failed else 0)
"""


def forked_lines(script, count):
    """The lines of `count` racers running `script`'s work(i), once all succeeded."""
    return run_all(textwrap.dedent(script) + FORKED, [[str(count)]])[0].splitlines()


RACE_NAME = """
    import pysandbox as modal
    from pysandbox.exception import AlreadyExistsError
    app = modal.App.lookup("race-app", create_if_missing=True)

    def work(i):
        try:
            return "won " + modal.Sandbox.create("sleep", "60", app=app, name="contested", timeout=60).object_id
        except AlreadyExistsError:
            return "lost"
    """

CHURN = """
    import json
    import pysandbox as modal
    app = modal.App.lookup("churn-app", create_if_missing=True)

    def work(w):
        worker, made = str(w), []
        for i in range(10):
            sb = modal.Sandbox.create(app=app, tags={"worker": worker}, timeout=120)
            sb.set_tags({"worker": worker, "i": str(i)})
            made.append(sb.object_id)
            listed = {s.object_id for s in modal.Sandbox.list(app_id=app.app_id, tags={"worker": worker})}
            assert set(made[-1:]) <= listed, "own sandbox missing from list"
            if i % 2:
                sb.terminate()
        return json.dumps(made)
    """


def test_fifty_processes_race_for_one_name():
    outs = forked_lines(RACE_NAME, 50)
    winners = [o.split()[1] for o in outs if o.startswith("won")]
    assert len(winners) == 1, outs
    assert outs.count("lost") == 49, outs
    app = modal.App.lookup("race-app")
    assert [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)] == winners
    modal.Sandbox.from_id(winners[0]).terminate(wait=True)


def test_twenty_processes_churn_two_hundred_sandboxes():
    outs = forked_lines(CHURN, 20)
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

# Each client's cycles: every way one ends (i % 4); client w's cycles are numbers 4w+1 to 4w+4, so that
# the five together end each way with a name and without (i % 3). benchmarks/bench_registry_soak.py is
# the long version.
CLIENT_CYCLES = 4

# The soak's processes run until the file named by their last argument exists (clients stop sooner,
# after their cycles): the lister and the collectors keep working for as long as the clients do.
CLIENT = """
import json, os, sys, time, traceback
import pysandbox as modal
app = modal.App.lookup("soak-app", create_if_missing=True)
worker, cycles, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
done, failures, made, cycle_ms = 0, [], [], []

def check(ok, what):
    if not ok:
        raise AssertionError(what)

i = int(worker) * cycles
while i < (int(worker) + 1) * cycles and not os.path.exists(stop):
    i += 1
    began = time.perf_counter()
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
        cycle_ms.append((time.perf_counter() - began) * 1000)
    except Exception:
        failures.append(traceback.format_exc())
print(json.dumps({"done": done, "failures": failures, "made": made, "cycle_ms": cycle_ms}))
"""

LISTER = """
import contextlib, io, json, os, sys, traceback
import pysandbox as modal
from pysandbox import cli
app = modal.App.lookup("soak-app", create_if_missing=True)
stop = sys.argv[1]
done, failures = 0, []
print("ready", flush=True)
while not os.path.exists(stop):
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
import json, os, sys, traceback
from pysandbox import garbage
stop = sys.argv[1]
rounds, removed, problems, failures = 0, 0, [], []
print("ready", flush=True)
while not os.path.exists(stop):
    try:
        found = garbage.collect()  # on demand: finished sandboxes go at once
        rounds += 1
        removed += len(found.sandboxes)
        problems += found.problems + found.notes
    except Exception:
        failures.append(traceback.format_exc())
print(json.dumps({"rounds": rounds, "removed": removed, "problems": problems, "failures": failures}))
"""


def run_soak(stop, cycles, busy=True):
    """Five clients of `cycles` cycles each and, if `busy`, a lister and two collectors beside them, until
    the clients are done (then `stop` is created). Their results: the clients', then the others'."""
    others = [python(LISTER, stop, stdout=-1, text=True)] + [python(COLLECTOR, stop, stdout=-1, text=True)
                                                            for _ in range(2)] if busy else []
    outs = []
    try:
        for p in others:  # the clients start once the lister and the collectors are at work
            assert p.stdout.readline() == "ready\n", "a lister or a collector did not start"
        clients = [python(CLIENT, worker, cycles, stop, stdout=-1, text=True) for worker in range(5)]
        outs += [p.communicate(timeout=600)[0] for p in clients]
    finally:
        stop.touch()  # whatever happened to the clients, the others end
        outs += [p.communicate(timeout=120)[0] for p in others]
    return [json.loads(out) for out in outs]


@pytest.mark.timeout(600)
def test_gc_against_busy_clients_fails_none_of_them(tmp_path):
    garbage.collect()  # what earlier tests left: the collectors' rounds are spent on the soak's sandboxes
    results = run_soak(tmp_path / "stop", CLIENT_CYCLES)
    client_results, lister, collectors = results[:5], results[5], results[6:]
    failures = [f for r in results for f in r["failures"]]
    assert failures == [], "\n".join(failures[:5])
    assert [r["done"] for r in client_results] == [CLIENT_CYCLES] * 5  # it did all its work
    assert lister["done"] > 0 and sum(c["rounds"] for c in collectors) > 10
    assert sum(c["removed"] for c in collectors) > 0 and [p for c in collectors for p in c["problems"]] == []
    made = [sid for r in client_results for sid in r["made"]]
    print(f"soak: {len(made)} sandboxes in {5 * CLIENT_CYCLES} client cycles, {lister['done']} listings, "
          f"{sum(c['rounds'] for c in collectors)} gc rounds removing {sum(c['removed'] for c in collectors)}: "
          "0 failures")
    assert not stray_sandbox_processes(made)
    garbage.collect()
    assert not [sid for sid in made if paths.sandbox_dir(sid).exists()]


# terminate() right after create, and a terminate() cut short (item 11) --------------------------


TERMINATED_AT_ONCE = 40  # benchmarks/bench_registry_soak.py terminates hundreds so


def test_create_then_terminate_at_once_leaves_nothing_behind(app):
    # The supervisor starts with SIGTERM blocked, so a terminate() that comes before it has set up
    # its signal handling waits for it instead of killing it before any teardown.
    for sb in create_then_terminate(app, TERMINATED_AT_ONCE):
        assert_ended_by_its_supervisor(sb)


def create_then_terminate(app, count):
    """`count` sandboxes, each terminated as soon as create returned it."""
    made = []
    for _ in range(count):
        sb = modal.Sandbox.create("sleep", "60", app=app, block_network=True)
        sb.terminate()
        made.append(sb)
    return made


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
