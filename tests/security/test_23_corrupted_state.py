"""Matrix 23: corrupted state. A record, an exit record, a cgroup list or a layer edited or
truncated by hand gives a clear error naming the file, never a traceback, and the other
sandboxes carry on: listing skips it with a warning, gc reports it and removes it once its
sandbox has ended, and nothing it names is ever signalled, killed or removed (issue 12,
items 10 and 12). Reading never writes."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox._state import paths
from pysandbox._state.files import new_id
from pysandbox._state.proc import ProcessRef
from pysandbox.image import store
from pysandbox.runtime import cgroups

from ._statedir import SIGTERM_BIT, pending_signals, victim, write_record_of

pytestmark = pytest.mark.rootless

BAD_RECORDS = {
    "truncated": lambda good: json.dumps(good)[:40],
    "not JSON": lambda good: "this is not json",
    "tags of the wrong type": lambda good: json.dumps({**good, "tags": ["a", "b"]}),
    "created_at a string": lambda good: json.dumps({**good, "created_at": "yesterday"}),
    "no supervisor": lambda good: json.dumps({k: v for k, v in good.items() if k != "supervisor"}),
    "another sandbox's id": lambda good: json.dumps({**good, "sandbox_id": new_id("sb-")}),
}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "pysandbox", *args], capture_output=True, text=True, timeout=120)


def kill_supervisor(sb):
    os.kill(sb._record.supervisor.pid, signal.SIGKILL)
    deadline = time.time() + 30
    while sb._record.supervisor.alive():
        assert time.time() < deadline
        time.sleep(0.01)


def test_bad_records_never_break_listing_and_gc_reports_and_removes_them(app, sandboxes):
    good = sandboxes("sleep", "300", tags={"who": "good"})
    ran = sandboxes("sleep", "300")  # a running sandbox whose record gets mangled
    saved = (paths.sandbox_dir(ran.object_id) / "record.json").read_text()
    template = json.loads(saved)
    bad = {}
    for kind, mangle in BAD_RECORDS.items():  # sandboxes that have ended, with a mangled record
        sb = modal.Sandbox.create(app=app)
        sb.terminate(wait=True)
        (paths.sandbox_dir(sb.object_id) / "record.json").write_text(mangle({**template, "sandbox_id": sb.object_id}))
        bad[sb.object_id] = kind
    (paths.sandbox_dir(ran.object_id) / "record.json").write_text(BAD_RECORDS["tags of the wrong type"](template))
    try:
        check_bad_records(app, good, ran, bad)
    finally:
        (paths.sandbox_dir(ran.object_id) / "record.json").write_text(saved)  # repaired by hand: usable again
    assert modal.Sandbox.from_id(ran.object_id).exec("echo", "ok").stdout.read() == "ok\n"


def check_bad_records(app, good, ran, bad):
    finished = modal.Sandbox.create(app=app)
    finished.terminate(wait=True)
    (paths.sandbox_dir(finished.object_id) / "exit").write_text('{"status": "exited", "code": "zero"')

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listed = [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)]
    assert listed == [good.object_id]
    warned = " ".join(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning))
    assert str(paths.sandbox_dir(ran.object_id) / "record.json") in warned  # the running one (the others have ended)
    for sandbox_id in [*bad, ran.object_id]:
        with pytest.raises(modal.exception.ExecutionError, match=str(paths.sandbox_dir(sandbox_id) / "record.json")):
            modal.Sandbox.from_id(sandbox_id)
    with pytest.raises(modal.exception.ExecutionError, match=str(paths.sandbox_dir(finished.object_id) / "exit")):
        modal.Sandbox.from_id(finished.object_id).poll()

    r = cli("ls")
    hidden = len(bad) + 2  # and `ran`, and `finished` with its corrupt exit record
    assert r.returncode == 0 and good.object_id in r.stdout and f"skipped {hidden} sandbox(es)" in r.stderr
    r = cli("ls", "--all")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    for sandbox_id in [*bad, ran.object_id, finished.object_id]:
        assert "corrupt:" in rows[sandbox_id], rows.get(sandbox_id)

    r = cli("gc")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    for sandbox_id in [*bad, finished.object_id]:
        assert not paths.sandbox_dir(sandbox_id).exists(), bad.get(sandbox_id)
        assert sandbox_id in r.stderr  # reported, with its file
    assert f"{paths.sandbox_dir(ran.object_id) / 'record.json'}" in r.stderr and "kept" in r.stderr
    assert paths.sandbox_dir(ran.object_id).exists() and good.poll() is None


def state_of(root):
    """Every path under `root` with its type, size and modification time."""
    found = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            found[path] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def test_reading_never_writes(app, sandboxes):
    running = sandboxes("sleep", "300", name="read-only-reader")
    lost = sandboxes("sleep", "300")
    kill_supervisor(lost)  # a repair is due, and reading must not do it
    done = sandboxes("true")
    done.wait()
    time.sleep(0.2)
    before = state_of(paths.sandboxes_dir())
    for _ in range(2):
        list(modal.Sandbox.list(app_id=app.app_id))
        for sb in (running, lost, done):
            handle = modal.Sandbox.from_id(sb.object_id)
            handle.poll(), handle.returncode, handle.get_tags(), handle.stats()
        modal.Sandbox.from_name(app.name, "read-only-reader")
        assert cli("ls", "--all").returncode == 0
    assert state_of(paths.sandboxes_dir()) == before


def test_a_cgroup_list_naming_anything_but_the_sandboxes_own_cgroup_is_refused(app, sandboxes):
    """Root: the other is a real running sandbox's cgroup, and a host cgroup with a process in
    it. Unprivileged (no cgroups of ours on this host): the same lists, refused all the same."""
    bystander = sandboxes("sleep", "300")
    own = cgroups.load(paths.sandbox_dir(bystander.object_id))
    foreign = None
    if own is not None:
        foreign = Path(own.dirs["pids"]).parent.parent / f"pysandbox-test-victim-{os.getpid()}"
        foreign.mkdir()
        host_victim = subprocess.Popen(["sleep", "300"])
        (foreign / "cgroup.procs").write_text(str(host_victim.pid))
        targets = [own.dirs["pids"], str(foreign)]
    else:
        targets = [f"/sys/fs/cgroup/pids/pysandbox/{bystander.object_id}", "/sys/fs/cgroup/pids/user.slice"]
    try:
        for target in targets:
            sb = modal.Sandbox.create("sleep", "300", app=app)  # gc removes it: not one of the fixture's
            kill_supervisor(sb)
            path = paths.sandbox_dir(sb.object_id) / paths.CGROUP_NAME
            path.write_text(json.dumps({"version": 1, "dirs": {"pids": target}}))
            assert sb.poll() == 137
            with pytest.warns(RuntimeWarning, match="refused"):
                assert sb.stats().pids is None  # not the numbers of whatever the list names
            with pytest.warns(RuntimeWarning, match="refused"):
                assert sb.terminate(wait=True) == 137  # the repair refuses the list, and says so
            r = cli("gc")
            assert r.returncode == 0 and target in r.stderr and "refused" in r.stderr
            assert not paths.sandbox_dir(sb.object_id).exists()
            assert bystander.exec("echo", "alive").stdout.read() == "alive\n"
            if own is not None:
                assert os.path.isdir(target) and host_victim.poll() is None
    finally:
        if foreign is not None:
            host_victim.kill()
            host_victim.wait()
            while foreign.exists():
                try:
                    foreign.rmdir()
                except OSError:
                    time.sleep(0.01)


def test_a_record_without_a_boot_id_is_trusted_only_for_a_live_supervisor(app, sandboxes, tmp_path):
    # Written by an older version: no boot id. A real sandbox's still reads as running...
    sb = sandboxes("sleep", "300")
    path = paths.sandbox_dir(sb.object_id) / "record.json"
    data = json.loads(path.read_text())
    del data["supervisor"]["boot_id"]
    path.write_text(json.dumps(data))
    legacy = modal.Sandbox.from_id(sb.object_id)
    assert legacy.poll() is None and sb.object_id in [s.object_id for s in modal.Sandbox.list(app_id=app.app_id)]
    # ...but one whose pid and start time now belong to some other process (a reboot) does not.
    stranger = victim()
    try:
        ref = ProcessRef.of(stranger.pid)
        sandbox_id = new_id("sb-")
        write_record_of(sandbox_id, ProcessRef(ref.pid, ref.start_time, None), app_id=app.app_id)
        handle = modal.Sandbox.from_id(sandbox_id)
        assert handle.poll() == 137 and sandbox_id not in [s.object_id for s in modal.Sandbox.list(app_id=app.app_id)]
        assert handle.terminate(wait=True) == 137
        assert pending_signals(stranger.pid) & SIGTERM_BIT == 0 and stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
    assert legacy.terminate(wait=True) == 137


def test_a_damaged_layer_is_named_and_leaves_other_images_and_sandboxes_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", str(tmp_path / "state"))  # its `prune --all` would empty the session's store
    app = modal.App.lookup("damaged-layer", create_if_missing=True)
    for name in ("a", "b"):
        (tmp_path / name).write_text(name * 100)
    damaged = modal.Image.from_scratch().add_local_file(tmp_path / "a", "/a", copy=True).build()
    healthy = modal.Image.from_scratch().add_local_file(tmp_path / "b", "/b", copy=True).build()
    on_healthy = modal.Sandbox.create(image=healthy, app=app, block_network=True)
    try:
        meta = store.layer_dir(store.layer_of(damaged.object_id)) / "meta.json"
        meta.write_text(meta.read_text()[:30])
        with pytest.raises(modal.exception.NotFoundError, match=str(meta)):
            modal.Sandbox.create(image=modal.Image.from_id(damaged.object_id), app=app)
        r = cli("image", "ls")
        assert r.returncode == 0 and "Traceback" not in r.stderr
        rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
        assert "corrupt" in rows[damaged.object_id] and "corrupt" not in rows[healthy.object_id]
        assert on_healthy.open("/b").read() == "b" * 100
        again = modal.Sandbox.create(image=healthy, app=app, block_network=True)
        assert again.open("/b").read() == "b" * 100
        again.terminate(wait=True)
        assert cli("image", "prune", "--all").returncode == 0  # removes the damaged one, not what runs
        rebuilt = modal.Image.from_scratch().add_local_file(tmp_path / "a", "/a", copy=True).build()
        sb = modal.Sandbox.create(image=rebuilt, app=app, block_network=True)
        assert sb.open("/a").read() == "a" * 100
        sb.terminate(wait=True)
    finally:
        on_healthy.terminate(wait=True)
    assert settings.state_dir().exists()
