"""Matrix 21: a crash mid-write. A record, a layer or a volume whose writer dies at any
point is the old one or the new one, never a mix (every write is a rename of a complete
temporary); what the crash leaves (temporary files, half-made directories, sandboxes whose
supervisor died with the host) is repaired or collected by the next start, and a record
from before a reboot never reads as running nor gets a signal (issue 12, items 8, 12, 13).

A host crash cannot be had in a test; the writer is killed with SIGKILL at random points
(what is on disk is then what a crash leaves, minus the page cache, which the atomic rename
covers), and a reboot is a record that names another boot id."""

import os
import random
import threading
import time

import pytest

import pysandbox as modal
from pysandbox import garbage, settings
from pysandbox._state import apps, names, paths, records
from pysandbox._state import volumes as volume_store
from pysandbox._state.files import new_id, read_json
from pysandbox._state.proc import ProcessRef
from pysandbox.image import store

from ._statedir import SIGTERM_BIT, pending_signals, python, victim, write_record_of

pytestmark = pytest.mark.rootless


def age(path, seconds=3600):
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def temporaries(directory):
    return [n for n in os.listdir(directory) if n.startswith(".") and n.endswith(".tmp")]


REWRITE_TAGS = """
import sys
import pysandbox as modal
sb = modal.Sandbox.from_id(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    i += 1
    sb.set_tags({"n": str(i), "pad": "x" * (i % 5000)})
"""


def test_a_record_rewritten_by_a_writer_killed_at_random_points_is_always_whole(sb):
    rng = random.Random(21)
    directory = paths.sandbox_dir(sb.object_id)
    for _ in range(20):
        writer = python(REWRITE_TAGS, sb.object_id, stdout=-1, text=True)
        assert writer.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0, 0.05))
        writer.kill()
        writer.wait()
        tags = records.read_record(sb.object_id).tags  # never torn
        assert set(tags) <= {"n", "pad"} and (not tags or int(tags["n"]) >= 1)
    assert sb.poll() is None and sb.object_id in [s.object_id for s in modal.Sandbox.list(app_id=sb._record.app_id)]
    for name in temporaries(directory):  # what the kills left, once older than any write takes
        age(directory / name)
    garbage.collect()
    assert temporaries(directory) == [] or not directory.exists()


BUILD = """
import sys
import pysandbox as modal
import pysandbox.image.build, pysandbox.image.steps, pysandbox.image.store  # imported lazily: before the kills start
print("ready", flush=True)
modal.Image.from_scratch().add_local_dir(sys.argv[1], "/files", copy=True).build()
print("built", flush=True)
"""


def test_a_layer_build_killed_at_random_points_is_published_whole_or_not_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", str(tmp_path / "state"))  # the builders' too
    files = tmp_path / "files"
    files.mkdir()
    for i in range(100):
        (files / f"f{i}").write_bytes(os.urandom(64 << 10))
    rng = random.Random(2121)
    for _ in range(10):
        builder = python(BUILD, files, stdout=-1, text=True)
        assert builder.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0, 0.3))
        builder.kill()
        builder.wait()
        for name in store.all_layers():  # published: whole, its metadata and every file at its full size
            if store.read_meta(name)["step"]["kind"] != "add_local":
                continue  # the empty base
            copied = store.layer_dir(name) / "rootfs" / "files"
            assert sorted(os.listdir(copied)) == sorted(os.listdir(files))
            assert all((copied / f).stat().st_size == 64 << 10 for f in os.listdir(files))
        garbage.collect()  # what a killed build left: its temporary directory (its lock died with it)
        building = store.root() / "tmp"  # absent when the kill came before the build made it
        assert not building.exists() or os.listdir(building) == []
        store.prune(everything=True)  # the next round starts from nothing again
    built = modal.Image.from_scratch().add_local_dir(files, "/files", copy=True).build()
    assert len(os.listdir(store.layer_dir(store.layer_of(built.object_id)) / "rootfs" / "files")) == 100


CREATE_VOLUME = """
import sys
import pysandbox as modal
print("ready", flush=True)
i = 0
while True:
    i += 1
    modal.Volume.objects.create(f"{sys.argv[1]}-{i}")
"""


def test_a_volume_create_killed_at_random_points_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", str(tmp_path / "state"))
    rng = random.Random(2122)
    volumes = settings.state_dir() / "volumes"
    for round_ in range(10):
        creator = python(CREATE_VOLUME, f"crash{round_}", stdout=-1, text=True)
        assert creator.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0, 0.05))
        creator.kill()
        creator.wait()
        for name in os.listdir(volumes):
            if name.startswith(f"crash{round_}-"):  # published: whole
                assert (volumes / name / "data").is_dir()
                assert read_json(volumes / name / "meta.json", "volume")["name"] == name
    for leftover in volume_store.leftovers():
        age(leftover)
    found = garbage.collect()
    assert volume_store.leftovers() == [] and found.problems == []


def test_after_a_crash_the_next_create_collects_what_was_left_and_never_signals_a_stranger(tmp_path, monkeypatch):
    """What a host crash leaves, in a state directory of its own, then one create."""
    monkeypatch.setenv("PYSANDBOX_HOME", str(tmp_path / "state"))
    app = modal.App.lookup("crashed", create_if_missing=True)
    stranger = victim()  # after the reboot, a process that happens to have the supervisor's pid and start time
    try:
        ref = ProcessRef.of(stranger.pid)
        crashed_id = new_id("sb-")
        directory, record = write_record_of(crashed_id, ProcessRef(ref.pid, ref.start_time, "the-boot-before"),
                                            app_id=app.app_id, name="crashed-name")
        (directory / "upper" / "root").mkdir(parents=True)
        (directory / "agent.sock").write_text("")
        (directory / ".record.json.77.abcd1234.tmp").write_text('{"sandbox_id": "half')
        names.claim_name(app.app_id, "crashed-name", crashed_id)
        # A create that died making its directory, a collection that died removing one.
        dead = ProcessRef(ref.pid, ref.start_time + 1)  # no such process
        (paths.sandboxes_dir() / records.staging_name(new_id("sb-"), dead)).mkdir()
        (paths.sandboxes_dir() / f".{new_id('sb-')}.trash" / "upper").mkdir(parents=True)
        # Writes of other state cut short, and a volume half made and one half deleted.
        leftovers = [apps.apps_dir() / ".other.json.9.abcd.tmp", settings.state_dir() / "secrets" / ".s.json.9.ab.tmp"]
        for path in leftovers:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{")
        for name in (".v.9.abcd.tmp", ".w.9.abcd.deleted"):
            (settings.state_dir() / "volumes" / name / "data").mkdir(parents=True)
            leftovers.append(settings.state_dir() / "volumes" / name)
        for path in [*leftovers, directory, directory / "record.json"]:
            age(path)

        # Before anything collects it: the stranger is not the sandbox, and reading changes nothing.
        handle = modal.Sandbox.from_id(crashed_id)
        assert handle.poll() == 137 and crashed_id not in [s.object_id for s in modal.Sandbox.list(app_id=app.app_id)]
        with pytest.raises(modal.exception.NotFoundError):
            modal.Sandbox.from_name("crashed", "crashed-name")
        assert (directory / "upper").exists() and not (directory / "exit").exists()

        # The next start: a create that finds the last collection long ago.
        (settings.state_dir() / garbage.STAMP_NAME).touch()
        age(settings.state_dir() / garbage.STAMP_NAME)
        sb = modal.Sandbox.create("sleep", "60", app=app, block_network=True)
        for thread in threading.enumerate():
            if thread.name == "pysandbox-gc":
                thread.join(60)
        assert sorted(os.listdir(paths.sandboxes_dir())) == [paths.COLLECTED_EXITS, sb.object_id]
        assert not [p for p in leftovers if os.path.lexists(p)]
        assert not (settings.state_dir() / "names" / app.app_id / "crashed-name").exists()
        assert handle.terminate(wait=True) == 137  # a handle from before reads what the collection recorded
        sb.terminate(wait=True)
        assert pending_signals(stranger.pid) & SIGTERM_BIT == 0 and stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
