"""Named images (Modal 1.6): publish() a built image under "name[:tag]", Image.from_name() it from
any process; hydrate() of a built image; the errors Modal gives for the rest."""

import asyncio
import subprocess
import sys

import pytest

import pysandbox as modal
from pysandbox.exception import ExecutionError, InvalidError, NotFoundError

pytestmark = pytest.mark.rootless


def test_publish_then_from_name_in_another_process(debian, sandboxes):
    image = debian.run_commands("echo named > /named")
    with pytest.raises(InvalidError, match="Call `.build\\(\\)` first"):
        image.publish("my-image")
    with pytest.raises(ExecutionError, match="cannot currently be hydrated on demand"):
        image.hydrate()
    image.build()
    assert image.hydrate() is image
    image.publish("my-image")
    image.publish("my-image:v1")
    assert modal.Image.from_name("my-image").object_id == image.object_id  # :latest
    code = ("import pysandbox as modal; print(modal.Image.from_name('my-image:v1').object_id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == image.object_id
    sb = sandboxes("cat", "/named", image=modal.Image.from_name("my-image:v1"))
    assert sb.stdout.read() == "named\n"
    debian.publish("my-image")  # publishing again moves the name
    assert modal.Image.from_name("my-image").object_id == debian.object_id
    assert asyncio.run(modal.Image.from_id.aio(image.object_id)).object_id == image.object_id


@pytest.mark.parametrize("name, error, match", [
    ("never-published", NotFoundError, "publish one under that name first"),
    ("bad name", InvalidError, "Invalid Image name"),
    ("ok:bad tag", InvalidError, "Invalid image tag"),
    ("../escape", InvalidError, "Invalid Image name"),
    (5, InvalidError, "must be a str"),
])
def test_bad_names(debian, name, error, match):
    with pytest.raises(error, match=match):
        modal.Image.from_name(name)
    if error is InvalidError:
        with pytest.raises(error, match=match):
            debian.publish(name)


def test_a_build_logs_its_steps_without_enable_output(debian, caplog):
    import logging
    import uuid

    marker = f"built-{uuid.uuid4()}"
    caplog.set_level(logging.DEBUG, logger="pysandbox.image")
    image = debian.run_commands(f"echo {marker}").build()
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "pysandbox.image"]
    assert (logging.INFO, f"Building image {image.object_id}") in records
    assert any(level == logging.INFO and "=> Step" in text and marker in text for level, text in records)
    assert (logging.DEBUG, marker) in records
    assert any(level == logging.INFO and text.startswith(f"Built image {image.object_id} in ") for level, text in records)
