"""Members and parameters the conformance test (tests/conformance/) found missing and this branch added:
each one doing what Modal's does, or refusing what it cannot do."""

import asyncio
import inspect
import io

import pytest

import pysandbox as modal
from pysandbox.exception import UnimplementedError


def test_volume_read_file_into_fileobj():
    with modal.Volume.ephemeral(_heartbeat_sleep=60) as vol:
        with vol.batch_upload() as batch:
            batch.put_file(io.BytesIO(b"x" * 3_000_000), "/big")
        sink, advances = io.BytesIO(), []
        assert vol.read_file_into_fileobj("/big", sink, progress_cb=lambda advance: advances.append(advance)) \
            == 3_000_000
        assert sink.getvalue() == b"x" * 3_000_000 and sum(advances) == 3_000_000
        assert asyncio.run(vol.read_file_into_fileobj.aio("/big", io.BytesIO())) == 3_000_000
        with pytest.raises(FileNotFoundError):
            vol.read_file_into_fileobj("/missing", io.BytesIO())


def test_volume_rename_has_aio():
    modal.Volume.objects.create("fidelity-a", environment_name="main", client=None, version=2)
    asyncio.run(modal.Volume.rename.aio("fidelity-a", "fidelity-b"))
    assert [v.name for v in modal.Volume.objects.list(environment_name="")] == ["fidelity-b"]
    modal.Volume.objects.delete("fidelity-b", environment_name="main")


@pytest.mark.parametrize("kind", [modal.Volume, modal.Secret])
def test_listing_before_a_time_is_refused(kind):
    with pytest.raises(UnimplementedError, match="created_before"):
        kind.objects.list(created_before=0)


def test_secret_info_refresh_and_modal_defaults():
    modal.Secret.objects.create("fidelity", {"A": "1"}, environment_name="main")
    assert modal.Secret.from_name("fidelity").info(refresh=True).name == "fidelity"
    assert repr(modal.Secret.from_dict()) == "Secret.from_dict([])"  # Modal's default: {}
    modal.Secret.objects.delete("fidelity", allow_missing=False, client=None)


def test_app_takes_modals_constructor_and_run_options():
    app = modal.App("fidelity", tags={"team": "x"}, secrets=[], volumes={}, include_source=False)
    with app.run(name="fidelity", detach=False, interactive=False) as running:
        assert running.app_id.startswith("ap-")
        sb = modal.Sandbox.create("sleep", "60", app=running)
        try:
            assert sb.exec("echo", "ok").stdout.read() == "ok\n"
        finally:
            sb.terminate()
    with pytest.raises(TypeError):
        modal.App("fidelity", unknown=True)


def test_signatures_and_aio_are_visible():
    """What the conformance test reads: the core function's parameters, and `.aio` on the class too."""
    assert list(inspect.signature(modal.Sandbox.create).parameters)[:2] == ["args", "app"]
    assert hasattr(modal.Sandbox.exec, "aio") and hasattr(modal.Volume.ephemeral, "aio")
    assert "self" not in inspect.signature(modal.Volume.from_name("v").listdir).parameters
