"""Registry logic: ids, atomic records under faults, validated parsers (hypothesis), process
identities with boot ids, name claims, and reads that never write."""

import errno
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from pysandbox import _aio, identity, settings
from pysandbox._state import apps, names, paths, records
from pysandbox._state.files import ensure_dir, is_well_formed_id, new_id, remove_tree, write_json_atomic
from pysandbox._state.proc import ProcessRef, boot_id
from pysandbox.exception import ConflictError, Error, ExecutionError, NotFoundError, ResourceExhaustedError
from pysandbox.probe import Probe
from pysandbox.runtime import reconcile

from ...security._statedir import fake_supervisor


@pytest.fixture
def home(fs, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", "/state")
    monkeypatch.setattr(identity, "adopt_state", lambda root: None)  # walks real fds: not for a fake tree
    fs.create_dir("/state")
    return "/state"


@pytest.fixture
def real_home(tmp_path, monkeypatch):
    """A state directory on the real filesystem (for tests that fault real syscalls or spawn processes)."""
    monkeypatch.setenv("PYSANDBOX_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def record(sandbox_id, supervisor=ProcessRef(123, 45, "boot"), **fields):
    return records.SandboxRecord(
        sandbox_id=sandbox_id, app_id="ap-x", app_name="a", name=None, tags={"k": "v"}, created_at=1.0,
        timeout=300, supervisor=supervisor, entrypoint=("sleep", "1"), workdir="/", image_id="host", **fields)


def test_ids():
    sid = new_id("sb-")
    assert is_well_formed_id(sid, "sb-")
    assert not is_well_formed_id("sb-short", "sb-")
    assert not is_well_formed_id(sid.replace("sb-", "ap-"), "sb-")
    assert not is_well_formed_id(None, "sb-") and not is_well_formed_id("sb-../../" + "x" * 16, "sb-")
    for other in ("é", "٣", "²", "_"):  # letters and digits beyond ASCII, and punctuation, are not ids
        assert not is_well_formed_id(sid[:-1] + other, "sb-")
    assert len({new_id("sb-") for _ in range(1000)}) == 1000


def test_record_round_trip(home):
    sid = new_id("sb-")
    paths.sandbox_dir(sid).mkdir(parents=True)
    records.write_record(record(sid))
    assert records.read_record(sid) == record(sid)
    assert [p for p in os.listdir(paths.sandbox_dir(sid)) if p.endswith(".tmp")] == []


def test_the_creator_file_names_its_own_creator_padded_to_the_exit_records_room(real_home, monkeypatch):
    """records._creator_file is made once per ProcessRef: another creator (a forked child) gets its own."""
    mine = ProcessRef.current()
    other = ProcessRef(mine.pid + 1, mine.start_time, mine.boot_id)
    for creator in (mine, other, mine):
        monkeypatch.setattr(ProcessRef, "current", classmethod(lambda cls, creator=creator: creator))
        directory = records.make_sandbox_dir(new_id("sb-"))
        data = (directory / paths.CREATOR_NAME).read_bytes()
        assert len(data) == records.EXIT_RESERVED_BYTES
        assert ProcessRef.from_json(json.loads(data)) == creator


def test_a_record_without_a_boot_id_still_reads(home):
    sid = new_id("sb-")
    path = ensure_dir(paths.sandbox_dir(sid)) / "record.json"
    data = record(sid).to_json()
    data["supervisor"] = {"pid": 123, "start_time": 45}  # written before boot ids were kept
    data["a_field_of_a_newer_version"] = [1, 2]  # ignored, not corrupt
    path.write_text(json.dumps(data))
    assert records.read_record(sid).supervisor == ProcessRef(123, 45, None)


def test_missing_and_corrupt_records(home):
    with pytest.raises(NotFoundError):
        records.read_record("sb-" + "x" * 22)
    sid = new_id("sb-")
    directory = paths.sandbox_dir(sid)
    directory.mkdir(parents=True)
    for text, why in [('{"sandbox_id": "trunc', "unreadable or corrupt"), ('{"sandbox_id": "x"}', "sandbox_id is not"),
                      ("[1, 2]", "not a JSON object")]:
        (directory / "record.json").write_text(text)
        with pytest.raises(ExecutionError, match=why) as info:
            records.read_record(sid)
        assert str(directory / "record.json") in str(info.value)
    for field, value in [("tags", "k=v"), ("created_at", "yesterday"), ("supervisor", {"pid": "1"}),
                         ("entrypoint", "sleep 1"), ("sandbox_id", new_id("sb-")), ("timeout", True)]:
        (directory / "record.json").write_text(json.dumps({**record(sid).to_json(), field: value}))
        with pytest.raises(ExecutionError, match=field):
            records.read_record(sid)
    other = new_id("sb-")
    paths.sandbox_dir(other).mkdir(parents=True)
    records.write_record(record(other))
    assert records.read_record(other).sandbox_id == other


def test_exit_status(home):
    sid = new_id("sb-")
    paths.sandbox_dir(sid).mkdir(parents=True)
    assert records.read_exit(sid) is None
    write_json_atomic(paths.sandbox_dir(sid) / "exit", {"status": "timeout", "code": 124, "finished_at": 2.0})
    assert records.read_exit(sid) == records.ExitStatus("timeout", 124, 2.0)
    for text in ("garbage", '{"status": "exited", "code": "0", "finished_at": 1}', '{"status": "won", "code": 0, "finished_at": 1}',
                 '{"status": "exited", "code": 0, "finished_at": 1, "oom_kills": "many"}'):
        (paths.sandbox_dir(sid) / "exit").write_text(text)
        with pytest.raises(ExecutionError, match="exit"):
            records.read_exit(sid)


def test_apps(home):
    assert apps.read_app("a") is None
    first = apps.create_app("a")
    assert apps.create_app("a") == first
    assert apps.find_app_by_id(first["app_id"]) == first
    with pytest.raises(Exception):
        apps.app_path("../evil")
    apps.app_path("b").write_text('{"app_id": 7, "name": "b"}')
    with pytest.raises(ExecutionError, match="b.json"):
        apps.read_app("b")


# Parsers: whatever a record holds, reading it gives a valid record or an ExecutionError -----------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=10)
SID = "sb-" + "a" * 22


def check_parsed(parsed):
    """What the rest of pysandbox does with a record must work on whatever the parser accepted."""
    assert isinstance(parsed.created_at, float) and isinstance(parsed.timeout, float)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.tags.items())
    assert isinstance({"k": "v"}.items() <= parsed.tags.items(), bool)  # what list(tags=...) does
    sorted([parsed, parsed], key=lambda r: r.created_at)
    assert all(isinstance(arg, str) for arg in parsed.entrypoint)
    assert isinstance(parsed.supervisor.pid, int) and isinstance(parsed.supervisor.start_time, int)
    for guest, host, encrypted in parsed.tunnels:
        assert isinstance(guest, int) and isinstance(host, int) and isinstance(encrypted, bool)
    if parsed.readiness_probe is not None:  # what wait_until_ready() does with it
        Probe.from_json(parsed.readiness_probe)


@examples(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(record(SID).to_json())), value=JSON)
def test_a_record_with_any_field_replaced_parses_or_is_reported(field, value):
    data = {**record(SID).to_json(), field: value}
    try:
        parsed = records.SandboxRecord.from_json(data, Path("/state/sandboxes") / SID / "record.json")
    except ExecutionError as exc:
        assert str(Path("/state/sandboxes") / SID / "record.json") in str(exc)
        return
    check_parsed(parsed)


@pytest.mark.parametrize("probe", [
    {"tcp_port": 70000, "exec_argv": None, "interval_ms": 100},
    {"tcp_port": 80, "exec_argv": ["true"], "interval_ms": 100},
    {"tcp_port": None, "exec_argv": [], "interval_ms": 100},
    {"tcp_port": None, "exec_argv": ["a\0b"], "interval_ms": 100},
])
def test_a_record_with_an_invalid_probe_is_reported_naming_its_file(probe):
    with pytest.raises(ExecutionError, match="record.json.*readiness_probe"):
        records.SandboxRecord.from_json({**record(SID).to_json(), "readiness_probe": probe},
                                        Path("/s") / SID / "record.json")


@examples(max_examples=300, deadline=None)
@given(data=JSON)
def test_any_json_parses_or_is_reported(data):
    try:
        check_parsed(records.SandboxRecord.from_json(data, Path("/s") / SID / "record.json"))
    except ExecutionError:
        pass


@examples(max_examples=200, deadline=None)
@given(data=JSON)
def test_any_json_is_a_process_or_a_value_error(data):
    try:
        ref = ProcessRef.from_json(data)
    except ValueError:
        return
    assert ref.pid > 0 and ref.start_time >= 0 and (ref.boot_id is None or isinstance(ref.boot_id, str))


# Atomic writes under faults --------------------------------------------------


def failing(errnum):
    def fail(*args, **kwargs):
        raise OSError(errnum, os.strerror(errnum))
    return fail


def test_short_writes_are_completed(real_home, monkeypatch):
    path = real_home / "r.json"
    real_home.mkdir()
    real_write = os.write
    with monkeypatch.context() as patched:
        patched.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
        write_json_atomic(path, {"tags": {"k": "v" * 100}})
    assert json.loads(path.read_text()) == {"tags": {"k": "v" * 100}}


@pytest.mark.parametrize("fault", ["full after a partial write", "fsync fails", "rename fails", "no bytes written"])
def test_a_failed_write_leaves_the_old_record_no_temp_file_and_a_clear_error(real_home, monkeypatch, fault):
    real_home.mkdir()
    path = real_home / "record.json"
    write_json_atomic(path, {"v": 1})
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, bytes(data[:5]))

    patches = {"full after a partial write": ("write", write), "fsync fails": ("fsync", failing(errno.EIO)),
               "rename fails": ("rename", failing(errno.EROFS)), "no bytes written": ("write", lambda fd, data: 0)}
    with monkeypatch.context() as patched, pytest.raises(Error) as info:
        patched.setattr(os, *patches[fault])
        write_json_atomic(path, {"v": 2, "pad": "x" * 100})
    assert str(path) in str(info.value)
    assert isinstance(info.value, ResourceExhaustedError) == (fault in ("full after a partial write", "no bytes written"))
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(real_home) == ["record.json"]


def test_a_failed_create_leaves_no_directory(real_home, monkeypatch):
    sid = new_id("sb-")
    with monkeypatch.context() as patched, pytest.raises(ResourceExhaustedError):
        patched.setattr(os, "rename", failing(errno.ENOSPC))
        records.make_sandbox_dir(sid)
    assert os.listdir(paths.sandboxes_dir()) == []
    directory = records.make_sandbox_dir(sid)
    assert os.listdir(directory) == ["creator"]
    assert os.path.getsize(directory / "creator") == records.EXIT_RESERVED_BYTES  # room for the exit record
    assert ProcessRef.from_json(json.loads((directory / "creator").read_text())).pid == os.getpid()


# Process identities -----------------------------------------------------------


def test_a_process_from_another_boot_is_never_alive(real_home):
    me = ProcessRef.of(os.getpid())
    assert me.boot_id == boot_id() and me.alive()
    other_boot = ProcessRef(me.pid, me.start_time, "another-boot")
    assert not other_boot.alive()
    legacy = ProcessRef(me.pid, me.start_time, None)
    assert legacy.alive()  # no boot id: the pid and start time still say it is us...
    assert not legacy.alive(records.SUPERVISOR_PROGRAM)  # ...but not that we are a supervisor


def test_a_supervisor_is_known_by_its_program(tmp_path):
    proc, ref = fake_supervisor(tmp_path)
    try:
        assert ref.alive(records.SUPERVISOR_PROGRAM)
        assert ProcessRef(ref.pid, ref.start_time, None).alive(records.SUPERVISOR_PROGRAM)
    finally:
        proc.kill()
        proc.wait()
    assert not ref.alive(records.SUPERVISOR_PROGRAM)


def _finished_error(sid):
    return _aio.run_sync(records.finished_error(sid))


def test_a_finished_error_waits_for_the_exit_record_and_then_reads_the_log(real_home, tmp_path):
    """A client can hear init's end before the supervisor copied a runner's last words into the log (the
    gVisor runner's log is a socket it copies): the cause is read once the exit record, written after the
    log's last byte, is there."""
    proc, ref = fake_supervisor(tmp_path)
    sid = new_id("sb-")
    ensure_dir(paths.sandbox_dir(sid))
    records.write_record(record(sid, supervisor=ref))
    paths.SandboxDir.of(sid).log.write_bytes(b"")

    def supervisor_ends():
        time.sleep(0.2)
        paths.SandboxDir.of(sid).log.write_bytes(b"runsc: cannot start the sandbox\n")
        write_json_atomic(paths.sandbox_dir(sid) / "exit", {"status": "failed", "code": 127, "finished_at": 2.0})
    ender = threading.Thread(target=supervisor_ends)
    ender.start()
    try:
        error = _finished_error(sid)
    finally:
        ender.join()
        proc.kill()
        proc.wait()
    assert isinstance(error, ConflictError)
    assert str(error) == f"Sandbox {sid} already finished: it failed to start (runsc: cannot start the sandbox)"


def _sandbox_of_a_dead_supervisor(log: bytes) -> str:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    ref = ProcessRef.of(dead.pid)
    dead.wait()
    sid = new_id("sb-")
    ensure_dir(paths.sandbox_dir(sid))
    records.write_record(record(sid, supervisor=ref))
    paths.SandboxDir.of(sid).log.write_bytes(log)
    return sid


def test_a_finished_error_does_not_wait_on_a_dead_supervisor(real_home, monkeypatch):
    sid = _sandbox_of_a_dead_supervisor(b"")

    async def no_wait(seconds):
        raise AssertionError("it waited for a record a dead supervisor will never write")
    monkeypatch.setattr(records._aio, "sleep", no_wait)
    assert str(_finished_error(sid)) == f"Sandbox {sid} already finished"


@pytest.mark.parametrize("status", ["terminated", "exited"])
def test_a_sandbox_that_ended_normally_is_already_finished_without_a_cause(real_home, status):
    """Modal's message is "Sandbox already finished" (or the task's exception): the network helper's
    progress (its tap device, its API socket's requests with ports, its seccomp warning), all the log of a
    sandbox that ran and ended, is no cause (it was: "(sent tapfd=6 for tap0)", "(apifd event)")."""
    sid = _sandbox_of_a_dead_supervisor(
        b"sent tapfd=6 for tap0\nWARNING: Support for seccomp is experimental\nreceived tapfd=6\napifd event\n"
        b'api_handler: got request: {"execute": "add_hostfwd", "arguments": {"proto": "tcp"}}\n')
    write_json_atomic(paths.sandbox_dir(sid) / "exit", {"status": status, "code": 137, "finished_at": 2.0})
    error = _finished_error(sid)
    assert isinstance(error, ConflictError) and str(error) == f"Sandbox {sid} already finished"


# Reads never write -------------------------------------------------------------


def tree(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns, p.stat().st_size)
                  for p in Path(root).rglob("*"))


def test_reading_a_sandbox_whose_supervisor_died_changes_nothing(real_home):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    ref = ProcessRef.of(dead.pid)
    dead.wait()
    sid = new_id("sb-")
    ensure_dir(paths.sandbox_dir(sid) / "upper")
    records.write_record(record(sid, supervisor=ref))
    before = tree(real_home)
    status = records.finished(records.read_record(sid))
    assert (status.status, status.code, status.lost) == ("terminated", 137, True)
    assert records.running_records() == [] and records.sandbox_state(records.read_record(sid)) == ("terminated", 137)
    assert tree(real_home) == before
    assert reconcile.repair(records.read_record(sid)) == []  # the repair is a separate, explicit step
    assert records.read_exit(sid).status == "terminated" and not (paths.sandbox_dir(sid) / "upper").exists()


def test_a_bad_record_is_skipped_with_a_warning_and_the_others_are_listed(real_home, tmp_path):
    proc, ref = fake_supervisor(tmp_path)
    try:
        good, bad = new_id("sb-"), new_id("sb-")
        ensure_dir(paths.sandbox_dir(good))
        records.write_record(record(good, supervisor=ref))
        ensure_dir(paths.sandbox_dir(bad))
        (paths.sandbox_dir(bad) / "record.json").write_text(json.dumps({**record(bad).to_json(), "tags": ["x"]}))
        with pytest.warns(RuntimeWarning, match=f"{bad}.*tags"):
            assert [r.sandbox_id for r in records.running_records()] == [good]
    finally:
        proc.kill()
        proc.wait()


def test_a_listing_sees_markers_and_records_that_appear_in_a_directory_it_remembers(real_home, tmp_path,
                                                                                      monkeypatch):
    """running_records remembers whether a directory held an exit record or a terminating marker
    by the directory's identity, once it has not changed for a while: whatever appears in it
    later (exit, terminating, a record replaced or edited in place) is seen all the same."""
    monkeypatch.setattr(records, "_SETTLED_NS", 50_000_000)  # over a clock tick, so the test is quick
    proc, ref = fake_supervisor(tmp_path)
    try:
        sids = [new_id("sb-") for _ in range(3)]
        for sid in sids:
            ensure_dir(paths.sandbox_dir(sid))
            records.write_record(record(sid, supervisor=ref))
        assert {r.sandbox_id for r in records.running_records()} == set(sids)
        assert not any(seen.markers for seen in records._seen.values())  # changed just now: not remembered
        time.sleep(0.1)
        assert {r.sandbox_id for r in records.running_records()} == set(sids)
        assert {os.path.basename(d) for d, seen in records._seen.items() if seen.markers} == set(sids)
        records.mark_terminating(sids[0])
        (paths.sandbox_dir(sids[1]) / "exit").write_text("{}")
        edited = attrs.evolve(record(sids[2], supervisor=ref), tags={"k": "w"})
        (paths.sandbox_dir(sids[2]) / "record.json").write_text(json.dumps(edited.to_json()))  # in place
        assert [r.tags for r in records.running_records()] == [{"k": "w"}]
        assert {r.sandbox_id for r in records.running_records(include_terminating=True)} == {sids[0], sids[2]}
        remove_tree(paths.sandbox_dir(sids[0]))
        records.running_records()
        assert not any(sids[0] in directory for directory in records._seen)
    finally:
        proc.kill()
        proc.wait()


def test_corrupt_or_hostile_name_claims_are_free(home):
    path = settings.state_dir() / "names" / "ap-x" / "n"
    path.parent.mkdir(parents=True)
    for text in ("{", "[]", '{"sandbox_id": 5}', '{"sandbox_id": "../../etc"}',
                 json.dumps({"sandbox_id": SID, "creator": {"pid": "me"}})):
        path.write_text(text)
        assert names.claimed_sandbox("ap-x", "n") is None
    path.write_text(json.dumps({"sandbox_id": SID, "creator": ProcessRef(5, 6, "b").to_json()}))
    assert names.claimed_sandbox("ap-x", "n") == SID


def test_warnings_name_each_bad_record_once(real_home):
    bad = new_id("sb-")
    ensure_dir(paths.sandbox_dir(bad))
    (paths.sandbox_dir(bad) / "record.json").write_text("{")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            records.running_records()
    assert len([w for w in caught if bad in str(w.message)]) == 1


def test_a_listing_sees_each_record_as_it_is_now(real_home, tmp_path):
    """running_records keeps what it parsed by the identity of the file: a record replaced
    (set_tags), corrupted or removed since the last listing is read as it is now, and the
    entries of directories that are gone are let go."""
    proc, ref = fake_supervisor(tmp_path)
    try:
        sid = new_id("sb-")
        ensure_dir(paths.sandbox_dir(sid))
        records.write_record(record(sid, supervisor=ref))
        assert [r.tags for r in records.running_records()] == [{"k": "v"}]
        records.write_record(attrs.evolve(record(sid, supervisor=ref), tags={"k": "w"}))
        assert [r.tags for r in records.running_records()] == [{"k": "w"}]
        (paths.sandbox_dir(sid) / "record.json").write_text("{")
        with pytest.warns(RuntimeWarning, match=sid):
            assert records.running_records() == []
        records.write_record(record(sid, supervisor=ref))
        assert [r.sandbox_id for r in records.running_records()] == [sid]
        (paths.sandbox_dir(sid) / "exit").write_text("{}")
        assert records.running_records() == []
        remove_tree(paths.sandbox_dir(sid))
        assert records.running_records() == [] and not any(sid in directory for directory in records._seen)
    finally:
        proc.kill()
        proc.wait()
