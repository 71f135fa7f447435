"""Modal's private Sandbox members that published clients call (README: "private members"):
swe-rex's and SWE-agent's Modal deployments log `await sandbox._get_task_id.aio()`, `modal shell`
turns a sandbox id into one with `_get_task_id()`; agent SDKs create through
`Sandbox._experimental_create` and use memory snapshots."""

import asyncio

import pytest

import pysandbox as modal
from pysandbox.exception import ConflictError, UnimplementedError

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
