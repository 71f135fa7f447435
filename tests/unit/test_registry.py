"""Registry logic against a fake filesystem: ids, atomic records, corrupt files, apps."""

import os

import pytest

from pysandbox import registry
from pysandbox.exception import ExecutionError, NotFoundError


@pytest.fixture
def home(fs, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", "/state")
    fs.create_dir("/state")
    return "/state"


def record(sandbox_id):
    return registry.SandboxRecord(
        sandbox_id=sandbox_id, app_id="ap-x", app_name="a", name=None, tags={"k": "v"}, created_at=1.0,
        timeout=300, supervisor=registry.ProcessRef(123, 4.5), entrypoint=("sleep", "1"), workdir="/",
        image_id="host",
    )


def test_ids():
    sid = registry.new_id("sb-")
    assert registry.is_well_formed_id(sid, "sb-")
    assert not registry.is_well_formed_id("sb-short", "sb-")
    assert not registry.is_well_formed_id(sid.replace("sb-", "ap-"), "sb-")
    assert len({registry.new_id("sb-") for _ in range(1000)}) == 1000


def test_record_round_trip(home):
    sid = registry.new_id("sb-")
    registry.sandbox_dir(sid).mkdir(parents=True)
    registry.write_record(record(sid))
    assert registry.read_record(sid) == record(sid)
    assert [p for p in os.listdir(registry.sandbox_dir(sid)) if p.endswith(".tmp")] == []


def test_missing_and_corrupt_records(home):
    with pytest.raises(NotFoundError):
        registry.read_record("sb-" + "x" * 22)
    sid = registry.new_id("sb-")
    directory = registry.sandbox_dir(sid)
    directory.mkdir(parents=True)
    (directory / "record.json").write_text('{"sandbox_id": "trunc')
    with pytest.raises(ExecutionError, match=str(directory / "record.json")):
        registry.read_record(sid)
    (directory / "record.json").write_text('{"sandbox_id": "x"}')
    with pytest.raises(ExecutionError, match="corrupt"):
        registry.read_record(sid)
    other = registry.new_id("sb-")
    registry.sandbox_dir(other).mkdir(parents=True)
    registry.write_record(record(other))
    assert registry.read_record(other).sandbox_id == other


def test_exit_status(home):
    sid = registry.new_id("sb-")
    registry.sandbox_dir(sid).mkdir(parents=True)
    assert registry.read_exit(sid) is None
    registry.write_json_atomic(registry.sandbox_dir(sid) / "exit", {"status": "timeout", "code": 124, "finished_at": 2.0})
    assert registry.read_exit(sid) == registry.ExitStatus("timeout", 124, 2.0)
    (registry.sandbox_dir(sid) / "exit").write_text("garbage")
    with pytest.raises(ExecutionError, match="exit"):
        registry.read_exit(sid)


def test_apps(home):
    assert registry.read_app("a") is None
    first = registry.create_app("a")
    assert registry.create_app("a") == first
    assert registry.find_app_by_id(first["app_id"]) == first
    with pytest.raises(Exception):
        registry.app_path("../evil")
