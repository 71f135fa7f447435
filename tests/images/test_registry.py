"""Image.from_registry against a real registry (Debian's docker-registry) on loopback,
holding a tiny two-layer image pushed with skopeo from an OCI layout the test writes."""

import io
import os
import tarfile
import textwrap

import pytest

import pysandbox as modal
from pysandbox.exception import ImageBuildError, InvalidError, NotFoundError
from pysandbox.image import distribution, reference, store

from .. import oci
from ..oci import HOST_FILES
from ..oci import free_port as _free_port
from .conftest import run

pytestmark = pytest.mark.rootless  # needs docker-registry and skopeo (.ci/run installs them)



@pytest.mark.gvisor
def test_pulled_layers_whiteouts_and_config(registry, sandboxes):
    image = modal.Image.from_registry(f"{registry}/test/tiny:1")
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image)
    assert run(sb, "pwd; echo $FOO; read b < /etc/b; echo $b; test -e /etc/a || echo a-deleted") == \
        "/opt/d\nfrom-config\nbee\na-deleted\n"
    assert run(sb, "test -e /opt/d/x || echo x-hidden; read y < /opt/d/y; echo $y") == "x-hidden\ny\n"


@pytest.mark.gvisor
def test_cmd_runs_when_no_arguments_are_given(registry, sandboxes):
    sb = sandboxes(image=modal.Image.from_registry(f"{registry}/test/tiny:1"))
    sb.wait(raise_on_termination=False)
    assert sb.stdout.read() == "from-cmd from-config\n"


@pytest.mark.gvisor(only=True)
def test_under_gvisor_an_image_root_is_writable_and_snapshots(registry, sandboxes):
    image = modal.Image.from_registry(f"{registry}/test/tiny:1")
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image, workdir="/srv/w")
    assert run(sb, "pwd; echo new > /etc/b; read b < /etc/b; echo $b") == "/srv/w\nnew\n"
    assert os.uname().release not in run(sb, "read v < /proc/version; echo $v")  # gVisor's kernel answers
    assert sb.ls("/srv") == ["w"]
    snapshot = sb.snapshot_filesystem()
    again = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=snapshot)
    assert run(again, "read b < /etc/b; echo $b; cd /srv/w && echo workdir") == "new\nworkdir\n"
    fresh = sandboxes("/bin/sh", "-c", "read b < /etc/b; echo $b", image=image)  # the layers are untouched
    fresh.wait(raise_on_termination=False)
    assert fresh.stdout.read() == "bee\n"


def test_docker_hub_names_through_the_mirror(registry, sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_REGISTRY_MIRROR", f"http://{registry}")
    image = modal.Image.from_registry("tiny:1")  # = docker.io/library/tiny:1
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image)
    assert run(sb, "read b < /etc/b; echo $b") == "bee\n"
    # Steps on top of a pulled image run in its root.
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done",
                   image=image.run_commands("echo built > /etc/built"))
    assert run(sb, "read b < /etc/built; echo $b") == "built\n"


def test_bad_references_and_unreachable_registries(registry, monkeypatch):
    for bad in ("UPPER/case", "python:bad tag", "a@sha256:short", "", "../dir", ".hidden/x", "a..b/c", "-h.io/x"):
        with pytest.raises(InvalidError):
            modal.Image.from_registry(bad)
    with pytest.raises(NotFoundError):
        modal.Image.from_registry(f"{registry}/test/missing:1").build()
    with pytest.raises(ImageBuildError, match="Cannot reach"):
        modal.Image.from_registry(f"127.0.0.1:{_free_port()}/test/tiny:1").build()
    with pytest.raises(InvalidError, match="add_python='3.12.1'"):  # a series, checked before any pull
        modal.Image.from_registry(f"127.0.0.1:{_free_port()}/test/tiny:1", add_python="3.12.1").build()
    monkeypatch.setenv("PYSANDBOX_REGISTRY_MIRROR", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(ImageBuildError, match=r"Cannot reach .*\(PYSANDBOX_REGISTRY_MIRROR.*check that it is running"):
        modal.Image.from_registry("python:3.12-slim").build()
    monkeypatch.setenv("PYSANDBOX_REGISTRY_MIRROR", "http://mirror.example.com:5000")
    with pytest.raises(InvalidError, match="plain HTTP"):
        modal.Image.from_registry("python:3.12-slim").build()


def test_an_unreachable_registry_says_what_to_do():
    hub = reference.parse("python:3.12-slim")
    assert "set PYSANDBOX_REGISTRY_MIRROR" in distribution.unreachable(hub, reference.base_url(hub), "no DNS")
    assert "check that it is running" in distribution.unreachable(hub, "http://127.0.0.1:5000", "refused")
    other = reference.parse("ghcr.io/org/app:1")
    message = distribution.unreachable(other, reference.base_url(other), "no DNS")
    assert message.startswith("Cannot reach the registry https://ghcr.io: no DNS; check the registry's name")


def test_reference_normalisation():
    assert str(reference.parse("python:3.12-slim")) == "registry-1.docker.io/library/python:3.12-slim"
    assert str(reference.parse("docker.io/org/app")) == "registry-1.docker.io/org/app:latest"
    ref = reference.parse("ghcr.io/org/app@sha256:" + "a" * 64)
    assert (ref.registry, ref.repository, ref.digest) == ("ghcr.io", "org/app", "sha256:" + "a" * 64)
    assert reference.base_url(reference.parse("localhost:5000/x")) == "http://localhost:5000"
    assert reference.base_url(reference.parse("registry.example.com/x")) == "https://registry.example.com"
    assert reference.parse("[::1]:5000/x").registry == "[::1]:5000"
    assert reference.parse("my-registry.example.com:443/org/app:1").registry == "my-registry.example.com:443"
    with pytest.raises(InvalidError, match="'..' is not a registry host"):  # was a UnicodeError from idna
        reference.parse("../dir")


def test_from_dockerfile(registry, sandboxes, tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.txt").write_text("main\n")
    (tmp_path / "app" / "secret.key").write_text("never copied\n")
    (tmp_path / "note.txt").write_text("note\n")
    (tmp_path / ".dockerignore").write_text("**/*.key\n")
    (tmp_path / "Dockerfile").write_text(textwrap.dedent(f"""\
        # a comment
        ARG BASE={registry}/test/tiny:1
        FROM $BASE
        ENV GREETING=hello \\
            OTHER=world
        WORKDIR /srv
        COPY app ./app
        ADD note.txt /etc/
        RUN echo "$GREETING $OTHER" > /etc/greeting
        LABEL purpose=test
        CMD ["/bin/sh", "-c", "while read line; do :; done"]
        """))
    image = modal.Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path)
    sb = sandboxes(image=image)
    assert run(sb, "pwd; read g < /etc/greeting; echo $g; read m < app/main.txt; echo $m; "
                   "test -e app/secret.key || echo ignored; read n < /etc/note.txt; echo $n") == \
        "/srv\nhello world\nmain\nignored\nnote\n"


def test_dockerfile_instructions_we_do_not_support(tmp_path):
    for text, word in (("FROM a AS b\nFROM c\nRUN --mount=type=ssh true\n", "line 3 `RUN --mount=type=ssh true`"),
                       ("FROM scratch\nCOPY --parents a /b\n", "COPY --parents"),
                       ("FROM scratch\nADD https://example.com/x /x\n", "URLs")):
        (tmp_path / "Dockerfile").write_text(text)
        with pytest.raises(InvalidError, match=word):
            modal.Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path)
    (tmp_path / "Dockerfile").write_text("RUN true\n")
    with pytest.raises(InvalidError, match="before FROM"):
        modal.Image.from_dockerfile(tmp_path / "Dockerfile")


def test_hostile_layer_cannot_write_outside_its_root(registry, tmp_path, sandboxes):
    """A layer whose symlink points at the host's /tmp, then writes through it, and a '..' path."""
    marker = f"pysandbox-pwned-{os.getpid()}"
    layout = tmp_path / "hostile"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in HOST_FILES.items():
            tar.add(os.path.realpath(path), arcname=name)
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/tmp"
        tar.addfile(link)
        for name in (f"escape/{marker}", f"../../{marker}"):
            info = tarfile.TarInfo(name)
            info.size = 6
            tar.addfile(info, io.BytesIO(b"pwned\n"))
    oci.write_layout(layout, "hostile", [(buffer.getvalue(), oci.LAYER)])
    oci.push(layout, "hostile", registry, "test/hostile:1")

    image = modal.Image.from_registry(f"{registry}/test/hostile:1").build()
    assert not os.path.exists(f"/tmp/{marker}")  # the write went to the unpacker's private /tmp
    root = store.layer_dir(store.layer_of(image.object_id))
    assert not list(root.parent.parent.rglob(marker))  # nothing beside or above the layer
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image)
    assert run(sb, f"test -e /escape/{marker} || echo absent") == "absent\n"
