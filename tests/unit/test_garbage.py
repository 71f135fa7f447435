"""Garbage collection against a state directory of our making (no sandbox): what is removed,
what is kept, what is reported, and the rate limit of the automatic collection."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from pysandbox import garbage
from pysandbox._state import apps, names, paths, records, volumes
from pysandbox._state.files import ensure_dir, new_id, write_json_atomic
from pysandbox._state.proc import ProcessRef
from pysandbox.exception import InvalidError

from ..security._statedir import fake_supervisor
from ._state.test_registry import record


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", str(tmp_path / "state"))
    yield tmp_path / "state"
    for thread in threading.enumerate():  # a background collection a test started ends with it
        if thread.name == "pysandbox-gc":
            thread.join(30)


@pytest.fixture
def supervisor(tmp_path):
    proc, ref = fake_supervisor(tmp_path)
    yield ref
    proc.kill()
    proc.wait()


def dead_process():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    ref = ProcessRef.of(proc.pid)
    proc.wait()
    return ref


def sandbox(supervisor, exit_record=None, **fields):
    sid = new_id("sb-")
    ensure_dir(paths.sandbox_dir(sid) / "upper")
    records.write_record(record(sid, supervisor=supervisor, **fields))
    if exit_record is not None:
        write_json_atomic(paths.sandbox_dir(sid) / "exit", exit_record)
    return sid


def age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


EXITED = {"status": "exited", "code": 0, "finished_at": 1.0}


def test_finished_and_abandoned_go_running_and_creating_stay(home, supervisor):
    finished = sandbox(supervisor, EXITED)
    lost = sandbox(dead_process())  # its supervisor died without a record: repaired, then removed
    running = sandbox(supervisor)
    abandoned = records.make_sandbox_dir(new_id("sb-"))
    (abandoned / "creator").write_text(json.dumps(dead_process().to_json()))
    creating = records.make_sandbox_dir(new_id("sb-"))  # our own create, in progress
    found = garbage.collect()
    assert sorted(found.sandboxes) == sorted([finished, lost, abandoned.name])
    assert sorted(os.listdir(paths.sandboxes_dir())) == sorted([running, creating.name, paths.COLLECTED_EXITS])
    assert found.problems == [] and found.notes == []


def test_a_handle_whose_sandbox_was_collected_still_reads_its_result(home, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_FINISHED_RETENTION", "600")
    sid = sandbox(dead_process(), {"status": "exited", "code": 3, "finished_at": 1.0})
    handle_record = records.read_record(sid)
    assert garbage.collect().sandboxes == [sid]
    status = records.finished(handle_record)
    assert (status.status, status.code, status.lost) == ("exited", 3, False)
    assert garbage.collect().leftovers == 0 and records.finished(handle_record).code == 3  # kept for the retention
    age(paths.collected_exit_path(sid), 700)
    garbage.collect()
    assert not paths.collected_exit_path(sid).exists()
    assert records.finished(handle_record).lost  # long gone: it reads as terminated


def test_retention_keeps_what_finished_recently(home, supervisor):
    recent, old = sandbox(supervisor, EXITED), sandbox(supervisor, EXITED)
    for path in (paths.sandbox_dir(old), paths.sandbox_dir(old) / "exit"):
        age(path, 700)
    assert garbage.collect(min_age=600).sandboxes == [old]
    assert garbage.collect().sandboxes == [recent]


def test_corrupt_records_are_reported_and_removed_once_their_sandbox_has_ended(home):
    dead, alive = new_id("sb-"), new_id("sb-")
    for sid in (dead, alive):
        ensure_dir(paths.sandbox_dir(sid))
        (paths.sandbox_dir(sid) / "record.json").write_text('{"sandbox_id": 3')
    with open(paths.sandbox_dir(alive) / paths.LOG_NAME, "w") as log:
        import fcntl
        fcntl.flock(log, fcntl.LOCK_SH)  # as a live supervisor holds it
        found = garbage.collect()
    assert found.sandboxes == [dead] and found.problems == []
    assert any(dead in note and "removed" in note for note in found.notes)
    assert any(alive in note and "kept" in note for note in found.notes)
    assert paths.sandbox_dir(alive).exists()


def test_a_foreign_cgroup_is_refused_reported_and_the_directory_still_collected(home):
    sid = sandbox(dead_process(), EXITED)
    victim = "/sys/fs/cgroup/pids/user.slice"
    (paths.sandbox_dir(sid) / paths.CGROUP_NAME).write_text(json.dumps({"version": 1, "dirs": {"pids": victim}}))
    found = garbage.collect()
    assert found.sandboxes == [sid]
    assert any(victim in note and "refused" in note for note in found.notes)


def test_name_claims_of_sandboxes_that_no_longer_run_are_collected(home, supervisor):
    running, finished = sandbox(supervisor), sandbox(supervisor, EXITED)
    names.claim_name("ap-x", "keep", running)
    names.claim_name("ap-x", "done", finished)
    names.claim_name("ap-x", "gone", new_id("sb-"))  # its directory is gone
    found = garbage.collect(min_age=600)  # the finished sandbox itself is kept, its claim is not needed
    assert found.claims == 2 and found.sandboxes == []
    assert os.listdir(home / "names" / "ap-x") == ["keep"]


def test_leftovers_of_interrupted_writes_are_collected_once_old(home, supervisor):
    home.mkdir()
    ensure_dir(apps.apps_dir())
    young = apps.apps_dir() / ".a.json.123.abcd.tmp"
    old = apps.apps_dir() / ".b.json.123.abcd.tmp"
    for path in (young, old):
        path.write_text("{")
    age(old, 120)
    # A creator died making its directory, before it could write who it is: the name says it.
    staging = paths.sandboxes_dir() / records.staging_name(new_id("sb-"), dead_process())
    staging.mkdir(parents=True)
    ours = paths.sandboxes_dir() / records.staging_name(new_id("sb-"), ProcessRef.of(os.getpid()))
    ours.mkdir()
    trash = paths.sandboxes_dir() / f".{new_id('sb-')}.trash"  # a collection died removing it
    (trash / "upper").mkdir(parents=True)
    half_volume = home / "volumes" / ".v.1.abcd.tmp"
    (half_volume / "data").mkdir(parents=True)
    age(half_volume, 120)
    assert volumes.leftovers() == [half_volume]
    found = garbage.collect()
    assert found.leftovers == 4 and found.problems == []
    assert young.exists() and not old.exists() and not staging.exists() and not trash.exists()
    assert ours.exists()  # a create in progress
    assert not half_volume.exists()


def test_gc_continues_past_what_it_cannot_remove_and_reports_it(home, monkeypatch, supervisor):
    stuck, free = sandbox(supervisor, EXITED), sandbox(supervisor, EXITED)
    rename = os.rename

    def refuse_one(source, target):
        if str(source).endswith(stuck):
            raise PermissionError(13, "Permission denied")
        return rename(source, target)

    monkeypatch.setattr(os, "rename", refuse_one)
    found = garbage.collect()
    assert found.sandboxes == [free]
    assert found.problems == [f"could not remove {paths.sandbox_dir(stuck)}: Permission denied"]


def test_bad_settings_are_an_error_before_any_work(home, monkeypatch):
    for variable in ("PYSANDBOX_GC_INTERVAL", "PYSANDBOX_FINISHED_RETENTION"):
        with monkeypatch.context() as patched:
            patched.setenv(variable, "soon")
            with pytest.raises(InvalidError, match=variable):
                garbage.collect_soon()
            if variable == "PYSANDBOX_FINISHED_RETENTION":
                with pytest.raises(InvalidError, match=variable):
                    garbage.collect()
    assert not home.exists()


def test_the_automatic_collection_runs_in_the_background_at_most_once_per_interval(home, monkeypatch, supervisor):
    monkeypatch.setenv("PYSANDBOX_FINISHED_RETENTION", "0")
    monkeypatch.setenv("PYSANDBOX_GC_INTERVAL", "3600")
    first = sandbox(supervisor, EXITED)
    ran = []
    real = garbage._collect
    monkeypatch.setattr(garbage, "_collect", lambda *args: ran.append(threading.current_thread().name) or real(*args))
    garbage.collect_soon()
    deadline = time.time() + 30
    while paths.sandbox_dir(first).exists():
        assert time.time() < deadline, "the background collection never ran"
        time.sleep(0.01)
    second = sandbox(supervisor, EXITED)
    for _ in range(5):
        garbage.collect_soon()  # within the interval: nothing starts
    time.sleep(0.2)
    assert ran == ["pysandbox-gc"] and paths.sandbox_dir(second).exists()
    monkeypatch.setenv("PYSANDBOX_GC_INTERVAL", "0")  # off
    age(home / garbage.STAMP_NAME, 7200)
    garbage.collect_soon()
    time.sleep(0.2)
    assert ran == ["pysandbox-gc"]


def test_the_background_collection_stays_on_its_state_directory(home, monkeypatch, tmp_path, supervisor):
    monkeypatch.setenv("PYSANDBOX_FINISHED_RETENTION", "0")
    sid = sandbox(supervisor, EXITED)
    started, release = threading.Event(), threading.Event()
    real = garbage._collect

    def slow(*args):
        started.set()
        release.wait(30)
        real(*args)

    monkeypatch.setattr(garbage, "_collect", slow)
    garbage.collect_soon()
    assert started.wait(30)
    other = tmp_path / "other-state"
    monkeypatch.setenv("PYSANDBOX_HOME", str(other))  # another state directory for the rest of the process
    release.set()
    deadline = time.time() + 30
    while (home / "sandboxes" / sid).exists():
        assert time.time() < deadline
        time.sleep(0.01)
    assert not other.exists()
