"""The registry client against scripted registries (tests/oci.py ScriptedServer): transient
failures retried, interrupted blobs resumed or restarted, per-layer progress under
enable_output(), and credentials from the Docker config when a registry asks for them."""

import base64
import json
import socket
import struct

import pytest

import pysandbox as modal

from .. import oci

pytestmark = pytest.mark.rootless

BASIC = "Basic " + base64.b64encode(b"alice:s3cret").decode()


def run(sb, command):
    p = sb.exec("/bin/sh", "-c", command)
    out = p.stdout.read()
    assert p.wait() == 0, p.stderr.read()
    return out


def shell_layer(marker):
    return oci.tar(oci.shell_entries() + [("etc", None, 0o755), ("etc/marker", marker.encode() + b"\n", 0o644)])


def serve(server, name, marker):
    """`name`:1 on `server`: (the layer's bytes, its blob route)."""
    layer = shell_layer(marker)
    manifest = server.serve_image(name, "1", [(layer, oci.LAYER)])
    return layer, f"/v2/{name}/blobs/{manifest['layers'][0]['digest']}"


def check_runs(server, name, marker, sandboxes):
    image = modal.Image.from_registry(f"{server.host}/{name}:1")
    sb = sandboxes("/bin/sh", "-c", "while read line; do :; done", image=image)
    assert run(sb, "read m < /etc/marker; echo $m") == marker + "\n"


@pytest.mark.parametrize("cut", ["closed", "reset"])
def test_a_blob_cut_mid_way_is_resumed_or_restarted(sandboxes, cut):
    """The first answer announces the whole layer and sends half. `closed`: the connection then
    closes, and the registry serves the rest (206) for the Range the client asks. `reset`: it
    resets (what the client holds of it is lost or not), and the registry, which ignores Range,
    serves the whole blob again (200)."""
    with oci.ScriptedServer() as server:
        layer, route = serve(server, f"flaky/{cut}", cut)
        ranges = []

        def blob(request):
            ranges.append(request.headers.get("Range"))
            if len(ranges) == 1:
                if cut == "reset":
                    request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return 200, {"Content-Length": str(len(layer))}, layer[:len(layer) // 2]
            if cut == "closed":
                start = int(request.headers["Range"].split("=")[1].rstrip("-"))
                return 206, {"Content-Range": f"bytes {start}-{len(layer) - 1}/{len(layer)}"}, layer[start:]
            return 200, {}, layer
        server.routes[route] = blob
        check_runs(server, f"flaky/{cut}", cut, sandboxes)
    assert ranges[0] is None and len(ranges) == 2
    if cut == "closed":
        assert ranges[1] == f"bytes={len(layer) // 2}-"


def test_503_twice_then_200(sandboxes):
    with oci.ScriptedServer() as server:
        layer, route = serve(server, "flaky/unavailable", "third time")
        manifest_route = "/v2/flaky/unavailable/manifests/1"
        honest = server.routes[manifest_route]
        answers = iter([(503, {}, b"busy"), (503, {"Retry-After": "0"}, b"busy")])
        server.routes[manifest_route] = lambda request: next(answers, honest)
        check_runs(server, "flaky/unavailable", "third time", sandboxes)
        assert [path for path, _ in server.requests].count(manifest_route) == 3


def test_layer_progress_under_enable_output(sandboxes, capfd):
    with oci.ScriptedServer() as server:
        layer, _ = serve(server, "shown/progress", "shown")
        with modal.enable_output():
            modal.Image.from_registry(f"{server.host}/shown/progress:1").build()
    err = capfd.readouterr().err
    size = f"{len(layer) / 1e6:.1f} MB"
    assert "pulling layer 1/1 sha256:" in err and f": {size} / {size}" in err


def _private(server, name, marker):
    """`name`:1 that answers only requests carrying alice:s3cret (a Basic challenge otherwise)."""
    serve(server, name, marker)
    for path, answer in list(server.routes.items()):
        def guarded(request, answer=answer):
            if request.headers.get("Authorization") != BASIC:
                return 401, {"WWW-Authenticate": 'Basic realm="private"'}, b""
            return answer
        server.routes[path] = guarded


def test_basic_auth_from_the_docker_config(sandboxes, tmp_path, monkeypatch):
    with oci.ScriptedServer() as server:
        _private(server, "private/app", "authorized")
        with pytest.raises(modal.exception.NotFoundError, match="credentials"):
            modal.Image.from_registry(f"{server.host}/private/app:1").build()  # no config: refused
        (tmp_path / "config.json").write_text(json.dumps(
            {"auths": {f"http://{server.host}/v1/": {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        check_runs(server, "private/app", "authorized", sandboxes)


def test_a_credential_helper_on_path(sandboxes, tmp_path, monkeypatch):
    helpers = tmp_path / "bin"
    helpers.mkdir()
    helper = helpers / "docker-credential-fake"
    helper.write_text(f"#!/bin/sh\nread server\nenv > {tmp_path}/helper-env\n"
                      "echo \"{\\\"ServerURL\\\": \\\"$server\\\", \\\"Username\\\": \\\"alice\\\", "
                      "\\\"Secret\\\": \\\"s3cret\\\"}\"\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helpers}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("PYSANDBOX_TEST_LEAK", "caller-only")
    with oci.ScriptedServer() as server:
        _private(server, "private/helped", "helped")
        (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {server.host: "fake"}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        check_runs(server, "private/helped", "helped", sandboxes)
    env = (tmp_path / "helper-env").read_text()
    assert "PYSANDBOX_TEST_LEAK" not in env and "HOME=" in env  # a fixed environment
