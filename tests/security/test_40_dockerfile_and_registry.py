"""Attacks on Image.from_dockerfile and the registry client: a build context that points out of
itself (symlinks, `..`, hostile .dockerignore exceptions), an ADD archive with `..` members and
links out, a Docker credential helper that floods or hangs, a registry that answers 429 forever."""

import io
import json
import os
import re
import tarfile
import time

import psutil
import pytest

import pysandbox as modal
from pysandbox.exception import ImageBuildError, InvalidError
from pysandbox.image import store

from .. import oci
from ..images.conftest import run

pytestmark = pytest.mark.rootless


@pytest.fixture
def tiny():
    """A scripted registry serving a shell image (tiny:1)."""
    with oci.ScriptedServer() as server:
        server.serve_image("base/tiny", "1", [(oci.tar(oci.shell_entries()), oci.LAYER)])
        yield f"{server.host}/base/tiny:1"


@pytest.fixture
def context(tmp_path):
    """A build context beside a secret it must never reach, with a symlink pointing at it."""
    (tmp_path / "secret.txt").write_text("host secret\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "app.txt").write_text("app\n")
    os.symlink(tmp_path / "secret.txt", ctx / "link-out")
    os.symlink(tmp_path, ctx / "dir-out")
    return ctx


def _dockerfile(ctx, base, *lines):
    (ctx / "Dockerfile").write_text(f"FROM {base}\n" + "".join(line + "\n" for line in lines))
    return modal.Image.from_dockerfile(ctx / "Dockerfile", context_dir=ctx)


@pytest.mark.parametrize("line", ["COPY ../secret.txt /x", "COPY link-out /x", "COPY dir-out/secret.txt /x",
                                  "COPY dir-*/secret.txt /x", "COPY ../*.txt /x/", "ADD ../secret.txt /x",
                                  "COPY /../secret.txt /x"])
def test_copy_cannot_reach_outside_the_context(context, tiny, line):
    with pytest.raises(InvalidError, match=f"line 2 `{re.escape(line)}`.*outside the build context"):
        _dockerfile(context, tiny, line)


def test_a_link_cannot_bring_in_what_dockerignore_leaves_out(context, tiny):
    # Found by the red team: the link's name was checked against .dockerignore, not what it leads to.
    (context / ".env").write_text("SECRET=1\n")
    (context / ".dockerignore").write_text(".env\n")
    os.symlink(".env", context / "innocent")
    with pytest.raises(InvalidError, match="line 2 `COPY innocent /x`: innocent is left out .* by .dockerignore"):
        _dockerfile(context, tiny, "COPY innocent /x")


def test_copying_the_context_keeps_its_links_as_links(context, tiny, sandboxes):
    """`COPY . /ctx` with a .dockerignore whose exceptions name paths outside the context: only the
    context's own files arrive; its symlinks out arrive as symlinks, never as the host's files."""
    (context / ".dockerignore").write_text("*\n!app.txt\n!link-out\n!dir-out\n!../secret.txt\n!/../secret.txt\n")
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=_dockerfile(context, tiny, "COPY . /ctx"))
    assert run(sb, "cd /ctx; for f in * .*; do echo $f; done; test -L link-out && test -L dir-out && echo links; "
                   "test -e link-out || echo dangling") == "app.txt\ndir-out\nlink-out\n.\n..\nlinks\ndangling\n"
    assert run(sb, "grep -rs 'host secret' / || echo unseen") == "unseen\n"


def test_add_archive_members_stay_under_the_destination(context, tiny, sandboxes, tmp_path):
    marker = f"pysandbox-add-{os.getpid()}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in ((f"../../{marker}", b"dotdot\n"), ("ok.txt", b"ok\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (("tmp-link", "/tmp"), ("up", "../..")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            archive.addfile(link)
        for name in (f"tmp-link/{marker}", f"up/{marker}"):
            info = tarfile.TarInfo(name)
            info.size = 6
            archive.addfile(info, io.BytesIO(b"pwned\n"))
    (context / "bundle.tar.gz").write_bytes(buffer.getvalue())
    image = _dockerfile(context, tiny, "ADD bundle.tar.gz /opt/bundle/").build()
    assert not os.path.exists(f"/tmp/{marker}") and not list(tmp_path.rglob(marker))
    assert not [p for p in store.root().rglob(marker) if "/opt/bundle/" not in str(p)]
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image)
    assert run(sb, f"read ok < /opt/bundle/ok.txt; echo $ok; test -e /{marker} || test -e /opt/{marker} || "
                   "echo contained; test -L /opt/bundle/tmp-link && echo link") == "ok\ncontained\nlink\n"


def test_add_archive_is_bounded_like_registry_layers(context, tiny, monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for number in range(50):
            info = tarfile.TarInfo(f"f{number}")
            archive.addfile(info, io.BytesIO(b""))
    (context / "many.tar").write_bytes(buffer.getvalue())
    monkeypatch.setenv("PYSANDBOX_LAYER_ENTRIES_MAX", "10")
    with pytest.raises(ImageBuildError, match="PYSANDBOX_LAYER_ENTRIES_MAX"):
        _dockerfile(context, tiny, "ADD many.tar /many/").build()


def _private_registry(server):
    server.serve_image("private/app", "1", [(oci.tar(oci.shell_entries()), oci.LAYER)])
    for path, answer in list(server.routes.items()):
        server.routes[path] = lambda request: (401, {"WWW-Authenticate": 'Basic realm="private"'}, b"")


def _helper(tmp_path, monkeypatch, body):
    helpers = tmp_path / "bin"
    helpers.mkdir()
    (helpers / "docker-credential-evil").write_text("#!/bin/sh\n" + body)
    (helpers / "docker-credential-evil").chmod(0o755)
    monkeypatch.setenv("PATH", f"{helpers}:{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "evil"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))


def _gone(pid):
    for _ in range(100):  # the group was killed; give init a moment to reap the orphan
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_credential_helper_that_floods_is_cut(tmp_path, monkeypatch):
    _helper(tmp_path, monkeypatch, "while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done\n")
    with oci.ScriptedServer() as server:
        _private_registry(server)
        with pytest.raises(ImageBuildError, match="more than 65536 bytes.*PYSANDBOX_CREDENTIAL_HELPER_OUTPUT_MAX"):
            modal.Image.from_registry(f"{server.host}/private/app:1").build()


def test_a_credential_helper_that_hangs_is_killed(tmp_path, monkeypatch):
    _helper(tmp_path, monkeypatch, f"sleep 1000 &\necho $! > {tmp_path}/child\necho $$ > {tmp_path}/self\nwait\n")
    monkeypatch.setenv("PYSANDBOX_CREDENTIAL_HELPER_TIMEOUT", "1")
    with oci.ScriptedServer() as server:
        _private_registry(server)
        with pytest.raises(ImageBuildError, match="within 1 s.*PYSANDBOX_CREDENTIAL_HELPER_TIMEOUT"):
            modal.Image.from_registry(f"{server.host}/private/app:1").build()
    for name in ("self", "child"):
        assert _gone(int((tmp_path / name).read_text())), name


def test_a_registry_answering_429_forever(monkeypatch):
    monkeypatch.setenv("PYSANDBOX_REGISTRY_RETRIES", "2")
    monkeypatch.setenv("PYSANDBOX_REGISTRY_BACKOFF_MAX", "1")  # the default cap, 8 s, would take 16 s here
    with oci.ScriptedServer() as server:
        server.routes["/v2/busy/app/manifests/1"] = (429, {"Retry-After": "3600"}, b"slow down")
        with pytest.raises(ImageBuildError, match="still failing after 2 retries.*HTTP 429.*PYSANDBOX_REGISTRY_RETRIES"):
            modal.Image.from_registry(f"{server.host}/busy/app:1").build()
        assert len(server.requests) == 3  # the first try and two retries, each after the 1 s cap, not 3600 s
