"""Races and faults on the registry: many processes at once, and creators killed mid-create."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import pysandbox as modal
from pysandbox import registry
from pysandbox.runtime import launch

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


def run_all(script, argsets):
    procs = [subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
             for args in argsets]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs)
    return outs


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
        record = registry.read_record(sid)
        assert record.tags["worker"] in {str(w) for w in range(20)}
    for sid in running:
        modal.Sandbox.from_id(sid).terminate()
    for sid in made:
        modal.Sandbox.from_id(sid).wait(raise_on_termination=False)
        assert not (registry.sandbox_dir(sid) / "upper").exists()
    assert not _stray_sandbox_processes(made)


def _stray_sandbox_processes(sandbox_ids):
    stray = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "sandbox-supervisor" in cmdline and any(sid in cmdline for sid in sandbox_ids):
            stray.append(proc)
    return stray


def _holders(sandbox_id):
    """What still holds an abandoned sandbox: processes naming it, and whether its socket serves."""
    named = [(p.pid, p.info["cmdline"]) for p in psutil.process_iter(["cmdline"])
             if sandbox_id in " ".join(p.info["cmdline"] or [])]
    directory = registry.sandbox_dir(sandbox_id)
    return {"processes": named, "log held": registry.held(directory),
            "files": sorted(os.listdir(directory)) if directory.exists() else None}


CREATE_ONE = textwrap.dedent(
    """
    import pysandbox as modal
    app = modal.App.lookup("fault-app", create_if_missing=True)
    print("ready", flush=True)
    sb = modal.Sandbox.create("sleep", "300", app=app, name="fault-named", timeout=300)
    print(sb.object_id, flush=True)
    import time; time.sleep(60)
    """
)


def test_creator_killed_at_random_points_leaves_nothing_half_made():
    rng = random.Random(1234)
    for _ in range(12):
        before = set(os.listdir(registry.sandboxes_dir())) if registry.sandboxes_dir().exists() else set()
        proc = subprocess.Popen([sys.executable, "-c", CREATE_ONE], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.03))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        new = set(os.listdir(registry.sandboxes_dir())) - before
        deadline = time.time() + 60
        for sid in new:
            try:
                sb = modal.Sandbox.from_id(sid)
            except modal.exception.NotFoundError:
                # never appeared: its supervisor (if started) tears it down by itself, then gc removes
                # the rest (however slowly a loaded machine lets the teardown finish)
                while sid not in registry.collect_garbage():
                    assert time.time() < deadline, f"{sid} never became collectable: {_holders(sid)}"
                    time.sleep(0.05)
                assert not registry.sandbox_dir(sid).exists()
                continue
            # appeared: fully usable from another process
            assert sb.exec("echo", "ok").stdout.read() == "ok\n"
            sb.terminate(wait=True)
        assert not _stray_sandbox_processes(new)
        # the name is free again for the next round
        with pytest.raises(modal.exception.NotFoundError):
            modal.Sandbox.from_name("fault-app", "fault-named")
    removed = registry.collect_garbage()
    assert all(not registry.sandbox_dir(sid).exists() for sid in removed)


def test_the_log_lock_is_held_until_the_sandbox_is_torn_down(sandboxes):
    # gc takes an unregistered directory only once nothing holds its log (registry.held):
    # not while its supervisor is still tearing the sandbox down.
    sb = sandboxes("sleep", "60")
    directory = registry.sandbox_dir(sb.object_id)
    assert registry.held(directory)
    sb.terminate(wait=True)
    assert not registry.held(directory)


def test_a_sandbox_that_ends_before_its_creator_confirms_it_is_created(app, monkeypatch):
    # A short entrypoint under load: the record confirms the sandbox, it runs and its
    # supervisor exits, all before confirm() writes to a pipe nobody reads any more.
    confirm = launch.Launched.confirm

    def confirm_late(self):
        deadline = time.time() + 30
        while self.supervisor.alive():
            assert time.time() < deadline, "the supervisor never finished"
            time.sleep(0.01)
        confirm(self)

    monkeypatch.setattr(launch.Launched, "confirm", confirm_late)
    sb = modal.Sandbox.create("sh", "-c", "echo done; exit 7", app=app)
    sb.wait()
    assert sb.returncode == 7 and sb.stdout.read() == "done\n"
    assert modal.Sandbox.from_id(sb.object_id).returncode == 7


def test_a_recorded_sandbox_survives_a_creator_that_died_before_confirming(app, monkeypatch):
    # The creator dies between writing the record and confirming: the supervisor sees the
    # pipe close without 'g', finds the record, and keeps the sandbox everyone can find.
    monkeypatch.setattr(launch.Launched, "confirm", launch.Launched.abandon)
    sb = modal.Sandbox.create("sleep", "60", app=app)
    try:
        fd0 = f"/proc/{sb._record.supervisor.pid}/fd/0"
        deadline = time.time() + 30
        while os.path.lexists(fd0):  # the supervisor closes the confirm pipe once it has read it
            assert time.time() < deadline, "the supervisor never read its confirm pipe"
            time.sleep(0.01)
        assert sb.poll() is None
        assert modal.Sandbox.from_id(sb.object_id).exec("echo", "ok").stdout.read() == "ok\n"
    finally:
        sb.terminate(wait=True)
