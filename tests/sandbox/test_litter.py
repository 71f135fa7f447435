"""Litter is collected without anyone running `pysandbox gc` (issue 12, item 13): creates start
a rate-limited collection in the background; a create that fails leaves nothing behind."""

import os
import threading
import time

import pytest

import pysandbox as modal
from pysandbox import garbage, settings
from pysandbox._state import paths, records
from pysandbox.exception import AlreadyExistsError, ResourceExhaustedError
from pysandbox.runtime import launch

from ..security._statedir import stray_sandbox_processes

pytestmark = pytest.mark.rootless


@pytest.fixture
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", str(tmp_path / "state"))
    yield tmp_path / "state"
    join_background_collections()


def join_background_collections():
    for thread in threading.enumerate():
        if thread.name == "pysandbox-gc":
            thread.join(60)


def test_creates_collect_what_finished_long_enough_ago(private_state, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_GC_INTERVAL", "1")
    monkeypatch.setenv("PYSANDBOX_FINISHED_RETENTION", "2")
    app = modal.App.lookup("litter", create_if_missing=True)
    old = modal.Sandbox.create("sleep", "60", app=app, name="old", block_network=True)
    old.terminate(wait=True)
    join_background_collections()
    claim = settings.state_dir() / "names" / app.app_id / "old"
    assert paths.sandbox_dir(old.object_id).exists()  # finished just now: kept for from_id and `ls`
    assert modal.Sandbox.from_id(old.object_id).returncode == 137
    time.sleep(2.5)  # past both the interval and the retention
    new = modal.Sandbox.create("sleep", "60", app=app, block_network=True)
    join_background_collections()
    assert not paths.sandbox_dir(old.object_id).exists() and not claim.exists()
    assert old.returncode == 137  # a handle that read it before keeps it
    assert new.poll() is None
    new.terminate(wait=True)


def test_a_create_that_fails_leaves_no_directory_no_claim_and_no_process(private_state, monkeypatch):
    app = modal.App.lookup("litter", create_if_missing=True)
    holder = modal.Sandbox.create("sleep", "60", app=app, name="taken", block_network=True)

    def entries():
        return sorted(os.listdir(paths.sandboxes_dir()))

    before = entries()
    with pytest.raises(AlreadyExistsError):
        modal.Sandbox.create("sleep", "60", app=app, name="taken", block_network=True)
    assert entries() == before

    def full_disk(record):
        raise ResourceExhaustedError("Cannot write the record: No space left on device.")

    spawned = []  # (the sandbox's directory, its supervisor)
    spawn = launch._spawn

    def spawn_and_note(directory, *args):
        launched = spawn(directory, *args)
        spawned.append((directory, launched.supervisor))
        return launched

    with monkeypatch.context() as patched:
        patched.setattr(launch, "_spawn", spawn_and_note)
        patched.setattr(records, "write_record", full_disk)  # fails after the supervisor started
        with pytest.raises(ResourceExhaustedError):
            modal.Sandbox.create("sleep", "60", app=app, name="fresh", block_network=True)
    [(directory, supervisor)] = spawned
    assert entries() == before and not directory.exists()
    assert not supervisor.alive() and not stray_sandbox_processes([directory.name])
    assert not (settings.state_dir() / "names" / app.app_id / "fresh").exists()
    holder.terminate(wait=True)
    assert garbage.collect().sandboxes == [holder.object_id]
