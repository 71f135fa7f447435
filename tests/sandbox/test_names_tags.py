"""Named sandboxes, tags and listing, also across processes (the seed's sections)."""

import asyncio
import signal
import subprocess
import sys
import textwrap

import pytest

import pysandbox as modal
from pysandbox import garbage
from pysandbox.exception import AlreadyExistsError, InvalidError, NotFoundError

pytestmark = [pytest.mark.rootless, pytest.mark.filterwarnings("ignore::pysandbox.exception.DeprecationError")]


@pytest.mark.gvisor
def test_names_unique_among_running(app, sandboxes):
    sb1 = sandboxes(name="my-name")
    with pytest.raises(AlreadyExistsError):
        sandboxes(name="my-name")
    assert modal.Sandbox.from_name("pysandbox-tests", "my-name").object_id == sb1.object_id
    sb1.terminate(wait=True)
    with pytest.raises(NotFoundError):
        modal.Sandbox.from_name("pysandbox-tests", "my-name")
    assert modal.Sandbox.from_name("pysandbox-tests", "my-name", include_terminated=True).object_id == sb1.object_id
    sb2 = sandboxes(name="my-name")  # the name is free again
    assert sb2.object_id != sb1.object_id


@pytest.mark.gvisor
def test_terminate_takes_effect_before_teardown_ends(app, sandboxes, monkeypatch):
    """Modal forgets a sandbox as soon as terminate() returns: not listed, name free,
    however long its supervisor takes to tear it down (here: forever, the signal is lost)."""
    sb = sandboxes("sleep", "60", name="going")
    monkeypatch.setattr(signal, "pidfd_send_signal", lambda *args: None)
    sb.terminate()
    assert sb._record.supervisor.alive()
    assert sb.object_id not in [s.object_id for s in modal.Sandbox.list(app_id=app.app_id)]
    with pytest.raises(NotFoundError):
        modal.Sandbox.from_name("pysandbox-tests", "going")
    successor = sandboxes(name="going")
    assert modal.Sandbox.from_name("pysandbox-tests", "going").object_id == successor.object_id
    monkeypatch.undo()
    assert sb.terminate(wait=True) == 137


def test_a_name_is_free_once_gc_removed_its_sandbox(app, sandboxes):
    first = modal.Sandbox.create(app=app, name="collected")
    first.terminate(wait=True)
    assert first.object_id in garbage.collect().sandboxes
    assert sandboxes(name="collected").object_id != first.object_id  # this creator being alive changes nothing


@pytest.mark.gvisor
def test_from_name_errors(app):
    with pytest.raises(NotFoundError):
        modal.Sandbox.from_name("no-such-app", "x")
    with pytest.raises(NotFoundError):
        modal.Sandbox.from_name("pysandbox-tests", "never-used")


def test_tags_and_list(app, sandboxes):
    other_app = modal.App.lookup("other-tests", create_if_missing=True)
    v11 = sandboxes("sleep", "10")
    v12 = sandboxes("sleep", "20")
    elsewhere = modal.Sandbox.create("sleep", "10", app=other_app)
    try:
        v11.set_tags({"major_version": "1", "minor_version": "1"})
        v12.set_tags({"major_version": "1", "minor_version": "2"})
        assert v12.get_tags() == {"major_version": "1", "minor_version": "2"}
        ids = [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)]
        assert ids[:2] == [v12.object_id, v11.object_id]  # newest first
        assert elsewhere.object_id not in ids
        major = [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id, tags={"major_version": "1"})]
        assert major == [v12.object_id, v11.object_id]
        exact = modal.Sandbox.list(app_id=app.app_id, tags={"major_version": "1", "minor_version": "2"})
        assert [sb.object_id for sb in exact] == [v12.object_id]
        v12.set_tags({})
        assert v12.get_tags() == {}
        assert elsewhere.object_id in [sb.object_id for sb in modal.Sandbox.list()]
        v11.terminate(wait=True)
        assert v11.object_id not in [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)]
        with pytest.raises(InvalidError):
            v12.set_tags({"k": 1})
    finally:
        elsewhere.terminate(wait=True)


@pytest.mark.gvisor
def test_create_with_tags_and_async_list(app, sandboxes):
    sb = sandboxes(tags={"team": "a"})

    async def listed():
        return [s.object_id async for s in modal.Sandbox.list.aio(app_id=app.app_id, tags={"team": "a"})]

    assert asyncio.run(listed()) == [sb.object_id]
    assert sb.get_tags() == {"team": "a"}


@pytest.mark.gvisor
def test_pool_across_processes(app, sandboxes):
    """The seed's pool: ids kept in one process, sandboxes used from others."""
    pool = [sandboxes() for _ in range(3)]
    script = textwrap.dedent(
        """
        import sys
        import pysandbox as modal
        for sandbox_id in sys.argv[1:]:
            sb = modal.Sandbox.from_id(sandbox_id)
            p = sb.exec("sh", "-c", "echo $0 > /tmp/job; cat /tmp/job", sandbox_id)
            print(p.stdout.read().strip())
        """
    )
    ids = [sb.object_id for sb in pool]
    out = subprocess.run([sys.executable, "-c", script, *ids], capture_output=True, text=True, check=True).stdout
    assert out.split() == ids
    for sb in pool:  # the other process's writes are visible here: same sandboxes
        assert sb.exec("cat", "/tmp/job").stdout.read().strip() == sb.object_id


@pytest.mark.gvisor
def test_from_id_reads_entrypoint_output_and_stdin_from_another_process(app, sandboxes):
    sb = sandboxes("sh", "-c", "echo started; read line; echo got $line")
    script = textwrap.dedent(
        f"""
        import pysandbox as modal
        sb = modal.Sandbox.from_id("{sb.object_id}")
        sb.stdin.write("hello\\n")
        sb.stdin.write_eof()
        sb.stdin.drain()
        print(sb.stdout.read(), end="")
        sb.wait()
        print(sb.returncode)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == "started\ngot hello\n0\n"
    finished = modal.Sandbox.from_id(sb.object_id)
    assert finished.returncode == 0
