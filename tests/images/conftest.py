"""Image fixtures (debian_slim's, `debian`, is tests/conftest.py's)."""

import gzip

import pytest

import pysandbox as modal
from pysandbox._core import oneshot
from pysandbox.image import store

from .. import oci

DEBIAN_CONFIG = {"architecture": "amd64", "os": "linux",
                 "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                            "Cmd": ["bash"]}}


@pytest.fixture(scope="session")
def debian_ref(debian, tmp_path_factory):
    """A reference to a Debian image on a loopback registry: debian_slim's tree, tarred inside a
    sandbox with its numeric owners (root, _apt, ...), as one OCI layer."""
    sb = modal.Sandbox.create("sleep", "300", image=debian,
                              app=modal.App.lookup("identity-images", create_if_missing=True))
    try:
        p = sb.exec("tar", "--numeric-owner", "--one-file-system", "--exclude=./__pysandbox", "-C", "/", "-cf", "-",
                    ".", text=False)
        layer = p.stdout.read()
        assert p.wait() == 0, p.stderr.read()
    finally:
        sb.terminate()
    root = tmp_path_factory.mktemp("debian-registry")
    oci.write_layout(root / "layout", "debian", [(layer, oci.LAYER)], DEBIAN_CONFIG)
    with oci.docker_registry(root) as host:
        oci.push(root / "layout", "debian", host, "library/debian:slim")
        yield f"{host}/library/debian:slim"


def write_oci_layout(layout):
    """Layer 1: a shell, etc/a, etc/b, opt/d/x. Layer 2 (gzipped): deletes etc/a, makes opt/d opaque, adds opt/d/y."""
    dirs = [(d, None, 0o755) for d in ("etc", "opt", "opt/d", "tmp")]
    layer1 = oci.tar(oci.shell_entries() + dirs + [("etc/a", b"a\n", 0o644), ("etc/b", b"bee\n", 0o644),
                                                   ("opt/d/x", b"x\n", 0o644)])
    layer2 = gzip.compress(oci.tar([("etc/.wh.a", b"", 0o644), ("opt/d/.wh..wh..opq", b"", 0o644),
                                    ("opt/d/y", b"y\n", 0o644)]))
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["FOO=from-config", "PATH=/bin"], "WorkingDir": "/opt/d",
                         "Cmd": ["/bin/sh", "-c", "echo from-cmd $FOO"]}}
    oci.write_layout(layout, "tiny", [(layer1, oci.LAYER), (layer2, oci.LAYER_GZIP)], config)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """host:port of a registry holding library/tiny:1 and test/tiny:1."""
    root = tmp_path_factory.mktemp("registry")
    with oci.docker_registry(root) as host:
        write_oci_layout(root / "layout")
        for name in ("library/tiny:1", "test/tiny:1"):
            oci.push(root / "layout", "tiny", host, name)
        yield host


def builder_sandbox_count():
    """How many build sandboxes were ever started (each build step that runs code starts one)."""
    from pysandbox._state import records
    return sum(1 for _, record in records.iter_records()
               if not isinstance(record, Exception) and record.app_name == oneshot.BUILDER_APP)


def temp_dirs():
    return sorted((store.root() / "tmp").iterdir()) if (store.root() / "tmp").exists() else []


def run(sb, command):
    """`command` through /bin/sh in `sb`: its stdout, once it exited 0."""
    p = sb.exec("/bin/sh", "-c", command)
    out = p.stdout.read()
    assert p.wait() == 0, p.stderr.read()
    return out
