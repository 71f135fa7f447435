"""Matrix 20: the creator crashes. Killed with SIGKILL mid-create, the sandbox never appears
(its supervisor tears it down, gc collects the rest: directory, cgroup, name claim); killed
after create, the sandbox runs on and any process finds it by from_id."""

import os
import random
import signal
import time

import pytest

import pysandbox as modal
from pysandbox import garbage, settings
from pysandbox._state import paths, records
from pysandbox.runtime import launch

from ._statedir import holders, python, stray_sandbox_processes

pytestmark = pytest.mark.rootless

CREATE_ONE = """
import pysandbox as modal
app = modal.App.lookup("fault-app", create_if_missing=True)
print("ready", flush=True)
sb = modal.Sandbox.create("sleep", "300", app=app, name="fault-named", timeout=300)
print(sb.object_id, flush=True)
import time; time.sleep(60)
"""


# Creators forked from one interpreter that imported the library once (an import per creator cost more
# than the rest of the test): a line on its stdin forks one, whose pid it answers; "reaped" once it died.
CREATORS = """
import os, sys, time
import pysandbox as modal
app = modal.App.lookup("fault-app", create_if_missing=True)
while sys.stdin.readline():
    pid = os.fork()
    if pid == 0:
        try:
            modal.Sandbox.create("sleep", "300", app=app, name="fault-named", timeout=300)
            time.sleep(60)  # the test kills it
        finally:
            os._exit(1)
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""


def entries():
    return set(os.listdir(paths.sandboxes_dir())) if paths.sandboxes_dir().exists() else set()


def claim_path():
    app = modal.App.lookup("fault-app", create_if_missing=True)
    return settings.state_dir() / "names" / app.app_id / "fault-named"


def test_creator_killed_at_random_points_leaves_nothing_half_made():
    rng = random.Random(1234)
    made = set()
    creators = python(CREATORS, stdin=-1, stdout=-1, text=True)
    try:
        for _ in range(24):
            made |= kill_a_creator(creators, rng.uniform(0, 0.03))
    finally:
        creators.kill()
        creators.wait()
    garbage.collect()
    assert not made & entries()


def kill_a_creator(creators, after):
    """Kill a creator `after` s into its life, then check that its sandbox was either never made
    (and is collected) or is whole; the entries it made in the sandboxes directory."""
    before = entries()
    creators.stdin.write("\n")
    creators.stdin.flush()
    pid = int(creators.stdout.readline())
    time.sleep(after)
    os.kill(pid, signal.SIGKILL)
    assert creators.stdout.readline() == "reaped\n"
    new = entries() - before - {paths.COLLECTED_EXITS}
    deadline = time.time() + 60
    for entry in new:
        if entry.startswith("."):  # killed before its directory appeared: only a staging one is left
            while (paths.sandboxes_dir() / entry).exists():
                assert time.time() < deadline, f"{entry} was never collected"
                garbage.collect()
                time.sleep(0.05)
            continue
        try:
            sb = modal.Sandbox.from_id(entry)
        except modal.exception.NotFoundError:
            # never appeared: its supervisor (if started) tears it down by itself, then gc removes
            # the rest (however slowly a loaded machine lets the teardown finish)
            while entry not in garbage.collect().sandboxes:
                assert time.time() < deadline, f"{entry} never became collectable: {holders(entry)}"
                time.sleep(0.05)
            assert not paths.sandbox_dir(entry).exists()
            continue
        # appeared: fully usable from another process
        assert sb.exec("echo", "ok").stdout.read() == "ok\n"
        sb.terminate(wait=True)
    assert not stray_sandbox_processes([e for e in new if e.startswith("sb-")])
    # the name is free again for the next round, and its claim is collected
    with pytest.raises(modal.exception.NotFoundError):
        modal.Sandbox.from_name("fault-app", "fault-named")
    garbage.collect()
    assert not claim_path().exists()
    return new


def test_a_creator_killed_after_create_leaves_a_sandbox_everyone_can_use():
    proc = python(CREATE_ONE, stdout=-1, text=True)
    assert proc.stdout.readline().strip() == "ready"
    sandbox_id = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    sb = modal.Sandbox.from_id(sandbox_id)
    assert sb.poll() is None
    assert sb.exec("echo", "still here").stdout.read() == "still here\n"
    assert modal.Sandbox.from_name("fault-app", "fault-named").object_id == sandbox_id
    assert sb.terminate(wait=True) == 137
    garbage.collect()
    assert not paths.sandbox_dir(sandbox_id).exists() and not claim_path().exists()


def test_the_log_lock_is_held_until_the_sandbox_is_torn_down(sandboxes):
    # gc takes an unregistered directory only once nothing holds its log (records.held):
    # not while its supervisor is still tearing the sandbox down.
    sb = sandboxes("sleep", "60")
    directory = paths.sandbox_dir(sb.object_id)
    assert records.held(directory)
    sb.terminate(wait=True)
    assert not records.held(directory)


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


def test_a_sandbox_that_ends_before_its_record_keeps_its_creator_for_gc(app, monkeypatch):
    # The supervisor writes a registered sandbox's exit record over its creator file (no new inode).
    # One that ends before its record exists must leave the creator file in place: it is what tells
    # gc that a create is still in progress, and gc must not remove the directory under its creator.
    write_record = records.write_record
    seen = {}

    def write_record_late(record):
        deadline = time.time() + 30
        while record.supervisor.alive():
            assert time.time() < deadline, "the supervisor never finished"
            time.sleep(0.01)
        directory = paths.SandboxDir.of(record.sandbox_id)
        seen["before"] = directory.creator.exists(), directory.exit.exists()
        garbage.collect()
        seen["kept"] = directory.path.exists()
        write_record(record)

    monkeypatch.setattr(records, "write_record", write_record_late)
    sb = modal.Sandbox.create("sh", "-c", "exit 7", app=app)
    sb.wait()
    assert seen == {"before": (True, True), "kept": True}
    assert sb.returncode == 7 and modal.Sandbox.from_id(sb.object_id).returncode == 7


def test_a_registered_sandbox_ends_with_its_creator_file_become_its_exit_record(sandboxes):
    sb = sandboxes("sleep", "60")
    directory = paths.SandboxDir.of(sb.object_id)
    creator = os.stat(directory.creator).st_ino
    sb.terminate(wait=True)
    assert not directory.creator.exists() and os.stat(directory.exit).st_ino == creator
    assert os.stat(directory.terminating).st_ino == os.stat(directory.record).st_ino  # a link, no inode
    assert records.read_exit(sb.object_id).code == 137
