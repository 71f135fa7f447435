"""Modal's private Sandbox members that published clients call (README: "private members"):
swe-rex's and SWE-agent's Modal deployments log `await sandbox._get_task_id.aio()`, `modal shell`
turns a sandbox id into one with `_get_task_id()`; agent SDKs create through
`Sandbox._experimental_create` and use memory snapshots."""

import asyncio

import pytest

import pysandbox as modal
from pysandbox.exception import AlreadyExistsError, ConflictError, InvalidError, UnimplementedError

pytestmark = pytest.mark.rootless


def test_task_id_is_stable_per_sandbox_in_every_process(sandboxes):
    first, second = sandboxes("sleep", "30"), sandboxes("sleep", "30")
    task_id = first._get_task_id()
    assert task_id.startswith("ta-") and task_id[3:].isalnum() and task_id != second._get_task_id()
    assert modal.Sandbox.from_id(first.object_id)._get_task_id() == task_id
    assert asyncio.run(first._get_task_id.aio(timeout=5, retry_transient=True)) == task_id
    assert first._get_task_id(raise_if_task_complete=True) == task_id  # still running
    first.terminate(wait=True)
    assert first._get_task_id() == task_id
    with pytest.raises(ConflictError, match="already finished"):
        modal.Sandbox.from_id(first.object_id)._get_task_id(raise_if_task_complete=True)


def test_experimental_create_is_create(app, sandboxes):
    sb = modal.Sandbox._experimental_create("sh", "-c", "echo $X", app=app, env={"X": "v2"})
    try:
        sb.wait()
        assert sb.stdout.read() == "v2\n"
    finally:
        sb.terminate()
    for name, value in (("i6pn", True), ("mounts", [object()])):
        with pytest.raises(UnimplementedError, match=rf"_experimental_create\({name}="):
            modal.Sandbox._experimental_create(app=app, **{name: value})


def test_memory_snapshots_say_they_are_unimplemented(sb):
    with pytest.raises(UnimplementedError, match="memory snapshots"):
        sb._experimental_snapshot()
    with pytest.raises(UnimplementedError, match="memory snapshots"):
        modal.Sandbox._experimental_from_snapshot(object())


def test_a_sandbox_named_after_creation_is_found_by_that_name(app, sandboxes):
    sb = sandboxes("sleep", "30")
    sb._experimental_set_name("later-name")
    sb._experimental_set_name("later-name")  # its own name again: no change, safe to retry
    assert modal.Sandbox._experimental_from_name(app.name, "later-name").object_id == sb.object_id
    assert modal.Sandbox.from_name(app.name, "later-name").object_id == sb.object_id
    with pytest.raises(ConflictError, match="already named 'later-name'"):
        sb._experimental_set_name("another")
    other = sandboxes("sleep", "30")
    with pytest.raises(AlreadyExistsError):
        other._experimental_set_name("later-name")
    with pytest.raises(InvalidError):
        other._experimental_set_name("no/slash")
    sb.terminate(wait=True)
    found = modal.Sandbox._experimental_from_name(app.name, "later-name", include_terminated=True)
    assert found.object_id == sb.object_id
    ended = sandboxes("true")
    ended.wait()
    with pytest.raises(ConflictError, match="no longer running"):
        modal.Sandbox.from_id(ended.object_id)._experimental_set_name("too-late")
    other._experimental_set_name("later-name")  # free again once its holder ended
    assert modal.Sandbox._experimental_from_name(app.name, "later-name").object_id == other.object_id
