"""OCI images for registry tests: tar layers, OCI layouts, a real registry on loopback
(Debian's docker-registry, images pushed with skopeo) and a scripted one that serves
whatever a test tells it to (what no honest registry would serve)."""

import contextlib
import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request

# A shell and its libraries from the host: enough for an image a sandbox can run.
HOST_FILES = {"bin/sh": "/usr/bin/dash", "lib/x86_64-linux-gnu/libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
              "lib64/ld-linux-x86-64.so.2": "/lib64/ld-linux-x86-64.so.2"}
HOST_DIRS = ("bin", "lib", "lib/x86_64-linux-gnu", "lib64")
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = LAYER + "+gzip"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tar(entries):
    """entries: (name, bytes or None for a directory, mode)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def shell_entries():
    """A layer's entries holding /bin/sh and what it needs."""
    files = [(name, open(os.path.realpath(path), "rb").read(), 0o755) for name, path in HOST_FILES.items()]
    return [(d, None, 0o755) for d in HOST_DIRS] + files


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(layout, data, media_type):
    (layout / "blobs" / "sha256" / digest_of(data).split(":")[1]).write_bytes(data)
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def image_json(layers, config=None, *, manifest_extra=None):
    """(config bytes, manifest dict without the blobs written): `layers` are (bytes, media type)."""
    config = config if config is not None else {"architecture": "amd64", "os": "linux", "config": {}}
    config = {**config, "rootfs": {"type": "layers", "diff_ids": [digest_of(data) for data, _ in layers]}}
    return json.dumps(config).encode(), dict(manifest_extra or {})


def write_layout(layout, name, layers, config=None, *, manifest_extra=None):
    """An OCI layout at `layout` holding the image `name`: `layers` are (bytes, media type)."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    config_bytes, extra = image_json(layers, config, manifest_extra=manifest_extra)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": blob(layout, config_bytes, CONFIG),
                "layers": [blob(layout, data, media_type) for data, media_type in layers], **extra}
    entry = blob(layout, json.dumps(manifest).encode(), MANIFEST)
    entry["annotations"] = {"org.opencontainers.image.ref.name": name}
    index = layout / "index.json"
    manifests = json.loads(index.read_text())["manifests"] if index.exists() else []
    index.write_text(json.dumps({"schemaVersion": 2, "manifests": manifests + [entry]}))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return manifest


@contextlib.contextmanager
def docker_registry(root):
    """host:port of a docker-registry on loopback storing under `root`/data."""
    port = free_port()
    (root / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n")
    server = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()


def push(layout, name, registry, reference):
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                    f"oci:{layout}:{name}", f"docker://{registry}/{reference}"], check=True)


def stored_blob(root, digest):
    """Where docker-registry keeps the blob `digest` under `root` (to tamper with it)."""
    hex_digest = digest.split(":")[1]
    return root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data"


class ScriptedServer:
    """An HTTP/1.0 server on `host` that answers each GET path from `routes`: path -> (status,
    headers dict, body bytes) or a function of the request returning one; it records every
    request's path and headers. Without a Content-Length the body ends when the connection closes."""

    def __init__(self, host="127.0.0.1"):
        self.routes, self.requests = {}, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, dict(self.headers)))
                route = outer.routes.get(self.path.split("?", 1)[0])
                status, headers, body = route(self) if callable(route) else route or (404, {}, b"")
                self.send_response(status)
                headers = {"Content-Length": str(len(body)), **headers}  # None: no such header
                for key, value in headers.items():
                    if value is not None:
                        self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client stopped reading, as it should on an oversized body

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.host = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def serve_image(self, repository, tag, layers, config=None, *, manifest=None):
        """Routes for `repository:tag` (layers: (bytes, media type)); `manifest` replaces the honest one."""
        config_bytes, _ = image_json(layers, config)
        blobs = {digest_of(config_bytes): config_bytes, **{digest_of(data): data for data, _ in layers}}
        if manifest is None:
            manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                        "config": {"mediaType": CONFIG, "digest": digest_of(config_bytes), "size": len(config_bytes)},
                        "layers": [{"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
                                   for data, media_type in layers]}
        self.routes[f"/v2/{repository}/manifests/{tag}"] = (
            200, {"Content-Type": MANIFEST}, json.dumps(manifest).encode())
        for digest, data in blobs.items():
            self.routes[f"/v2/{repository}/blobs/{digest}"] = (200, {}, data)
        return manifest
