"""A registry's image index is resolved to the host's architecture (x86_64: amd64, aarch64: arm64)."""

import json

import pytest

from pysandbox.exception import InvalidError
from pysandbox.image import distribution, reference
from tests import oci

INDEX = "application/vnd.oci.image.index.v1+json"


def _serve_index(server, platforms):
    """An index with one image per architecture; each image's config names its architecture."""
    entries = []
    for arch in platforms:
        manifest = server.serve_image("multi", arch, [], {"architecture": arch, "os": "linux", "config": {}})
        body = json.dumps(manifest).encode()
        digest = oci.digest_of(body)
        server.routes[f"/v2/multi/manifests/{digest}"] = (200, {"Content-Type": oci.MANIFEST}, body)
        entries.append({"mediaType": oci.MANIFEST, "digest": digest, "size": len(body),
                        "platform": {"os": "linux", "architecture": arch}})
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}
    server.routes["/v2/multi/manifests/latest"] = (200, {"Content-Type": INDEX}, json.dumps(index).encode())


@pytest.mark.parametrize("machine, wanted", [("x86_64", "amd64"), ("aarch64", "arm64")])
def test_the_hosts_architecture_is_pulled(monkeypatch, machine, wanted):
    monkeypatch.setattr(distribution.platform, "machine", lambda: machine)
    with oci.ScriptedServer() as server:
        _serve_index(server, ["arm64", "amd64", "s390x"])
        _, config = distribution.Client(reference.parse(f"{server.host}/multi:latest")).manifest()
    assert config["architecture"] == wanted


def test_an_index_without_the_hosts_architecture_is_refused_naming_it(monkeypatch):
    monkeypatch.setattr(distribution.platform, "machine", lambda: "aarch64")
    with oci.ScriptedServer() as server:
        _serve_index(server, ["amd64"])
        with pytest.raises(InvalidError, match="no linux/arm64 variant"):
            distribution.Client(reference.parse(f"{server.host}/multi:latest")).manifest()
