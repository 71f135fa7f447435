"""Item 5 (images): a hostile image served by a registry on loopback cannot make the host
download, keep or unpack more than the bounds in pysandbox/bounds.py allow, nor make it
trust a blob, manifest or config whose digest is wrong. A 1 MB layer that unpacked to
1.1 GB was reproduced before the bounds existed.

Each attack fails the build with an ImageBuildError naming the bound and its variable
(or the digest mismatch), leaves no temporary layer or blob behind, and the cache still
pulls, unpacks and runs images afterwards: the `attack` fixture checks both."""

import gzip
import io
import json
import tarfile
import urllib.request
import zlib

import pytest

import pysandbox as modal
from pysandbox.exception import ImageBuildError
from pysandbox.image import store

from .. import oci
from ._inside import sh

pytestmark = pytest.mark.rootless  # needs docker-registry and skopeo (.ci/run installs them)

MiB, GiB, TiB = 1 << 20, 1 << 30, 1 << 40
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class Registry:
    """A docker-registry on loopback; `push` stores an image in it from an OCI layout."""

    def __init__(self, root, host):
        self.root, self.host = root, host

    def push(self, name, layers, config=None, *, manifest_extra=None):
        """`layers`: (bytes, media type); a shell is always the first layer. Returns the manifest
        the registry serves (skopeo may compress layers on the way)."""
        layers = [(oci.tar(oci.shell_entries()), oci.LAYER), *layers]
        layout = self.root / f"layout-{name}"
        oci.write_layout(layout, name, layers, config, manifest_extra=manifest_extra)
        oci.push(layout, name, self.host, f"hostile/{name}:1")
        request = urllib.request.Request(f"http://{self.host}/v2/hostile/{name}/manifests/1",
                                         headers={"Accept": f"{oci.MANIFEST}, {DOCKER_MANIFEST}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def image(self, name):
        return modal.Image.from_registry(f"{self.host}/hostile/{name}:1")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-registry")
    with oci.docker_registry(root) as host:
        registry = Registry(root, host)
        registry.push("good", [(oci.tar([("ok", b"fine\n", 0o644)]), oci.LAYER)])
        yield registry


def _temp_entries():
    """What a build left in the store's tmp; a layer a force_build replaced (retired, swept by
    the next build that finds no sandbox on it) is not the attack's."""
    tmp = store.root() / "tmp"
    entries = tmp.iterdir() if tmp.exists() else ()
    return sorted(path.name for path in entries if f".{store.RETIRED}-" not in path.name)


@pytest.fixture
def attack(registry, sandboxes, monkeypatch):
    """Run a test's attack; then: no temp layer or blob is left, and the cache still works
    (the good image is pulled and unpacked again, and a sandbox runs on it)."""
    before = _temp_entries()
    yield monkeypatch
    monkeypatch.undo()  # the bounds the attack lowered
    assert _temp_entries() == before
    image = modal.Image.from_registry(f"{registry.host}/hostile/good:1", force_build=True).build()
    code, out = sh(sandboxes(image=image, block_network=True), "read x < /ok; echo $x")
    assert (code, out) == (0, "fine\n")


def _build_fails(image, match):
    with pytest.raises(ImageBuildError, match=match) as failed:
        image.build()
    assert "Traceback" not in str(failed.value)
    return failed.value


# Manifests and configs: bounded reads ---------------------------------------------------------

def test_oversized_manifest(registry, attack):
    registry.push("big-manifest", [], manifest_extra={"annotations": {"padding": "x" * 20_000}})
    attack.setenv("PYSANDBOX_REGISTRY_MANIFEST_MAX", "8192")
    _build_fails(registry.image("big-manifest"), "larger than 8192 bytes.*PYSANDBOX_REGISTRY_MANIFEST_MAX")
    attack.delenv("PYSANDBOX_REGISTRY_MANIFEST_MAX")
    registry.image("big-manifest").build()  # nothing of the refused pull stands in the way


def test_endless_manifest_without_a_length_is_cut_at_the_default_bound(attack):
    """No Content-Length, a body past 4 MiB: reading stops at the bound, not at the end."""
    with oci.ScriptedServer() as server:
        server.routes["/v2/hostile/endless/manifests/1"] = (
            200, {"Content-Length": None}, b"{" + b" " * (5 * MiB) + b"}")
        _build_fails(modal.Image.from_registry(f"{server.host}/hostile/endless:1"),
                     "larger than 4194304 bytes.*PYSANDBOX_REGISTRY_MANIFEST_MAX")


def test_oversized_config(registry, attack):
    config = {"architecture": "amd64", "os": "linux", "config": {"Labels": {"padding": "x" * 20_000}}}
    registry.push("big-config", [], config)
    attack.setenv("PYSANDBOX_REGISTRY_CONFIG_MAX", "8192")
    _build_fails(registry.image("big-config"), "over the bound of 8192 .*PYSANDBOX_REGISTRY_CONFIG_MAX")
    attack.delenv("PYSANDBOX_REGISTRY_CONFIG_MAX")
    registry.image("big-config").build()


@pytest.mark.parametrize("config, what", [
    ({"config": {"Env": "PATH=/bin"}}, "Env"),
    ({"config": {"Cmd": ["/bin/sh", "-c", "echo\0injected"]}}, "Cmd"),
    ({"config": {"Entrypoint": [1, 2]}}, "Entrypoint"),
    ({"config": ["not", "an", "object"]}, "`config`"),
    ({"config": {"WorkingDir": {"a": 1}}}, "WorkingDir"),
])
def test_malformed_config(registry, attack, config, what):
    name = f"bad-config-{what.strip('`').lower()}"
    registry.push(name, [], {"architecture": "amd64", "os": "linux", **config})
    _build_fails(registry.image(name), what)


# Blobs: digests, sizes, names ---------------------------------------------------------------

@pytest.mark.parametrize("which", ["layer", "config"])
def test_blob_with_a_wrong_digest_is_never_kept(registry, attack, which):
    """The registry's stored blob has one byte changed after the push (same size): served as it
    is, it must be refused, and nothing built from it."""
    manifest = registry.push(f"tampered-{which}", [(oci.tar([("payload", b"trusted\n", 0o644)]), oci.LAYER)])
    blob = manifest["layers"][-1] if which == "layer" else manifest["config"]
    stored = oci.stored_blob(registry.root, blob["digest"])
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 1
    stored.write_bytes(data)
    _build_fails(registry.image(f"tampered-{which}"), "digest mismatch")
    assert not list(store.layers_dir().glob("*/rootfs/payload"))


def test_blob_longer_than_its_descriptor(attack):
    """The layer is served with ten times the bytes its manifest declares: the download stops
    at the declared size and nothing of it is kept."""
    layer = oci.tar(oci.shell_entries())
    with oci.ScriptedServer() as server:
        manifest = server.serve_image("hostile/long", "1", [(layer, oci.LAYER)])
        route = f"/v2/hostile/long/blobs/{manifest['layers'][0]['digest']}"
        server.routes[route] = (200, {"Content-Length": None}, layer * 10)
        _build_fails(modal.Image.from_registry(f"{server.host}/hostile/long:1"), "larger than the .* declares")


def test_blob_larger_than_the_bound_is_not_downloaded(attack):
    """A manifest declaring a 9 GiB layer: refused from the manifest, before any download."""
    with oci.ScriptedServer() as server:
        manifest = server.serve_image("hostile/huge", "1", [(oci.tar(oci.shell_entries()), oci.LAYER)])
        manifest["layers"][0]["size"] = 9 * GiB
        server.routes["/v2/hostile/huge/manifests/1"] = (200, {}, json.dumps(manifest).encode())
        _build_fails(modal.Image.from_registry(f"{server.host}/hostile/huge:1"),
                     "a layer of 9663676416 bytes, over the bound .*PYSANDBOX_REGISTRY_LAYER_MAX")
        assert not [path for path, _ in server.requests if "/blobs/" in path]


@pytest.mark.parametrize("digest", ["sha256:../../../../victim", "sha512:" + "a" * 128, "sha256:" + "A" * 64, None])
def test_manifest_cannot_name_a_path_for_a_blob(attack, digest):
    """A blob's digest becomes a file name on the host (images/tmp/<layer>/blobs/<hex>): one that
    climbs to the state directory would have truncated a file there and then removed it at the
    digest check. Anything but sha256:<64 hex> is refused before a request is made."""
    victim = store.root().parent / "victim"
    victim.write_text("intact\n")
    with oci.ScriptedServer() as server:
        layer = oci.tar(oci.shell_entries())
        manifest = server.serve_image("hostile/path", "1", [(layer, oci.LAYER)])
        manifest["layers"][0]["digest"] = digest
        server.routes["/v2/hostile/path/manifests/1"] = (200, {}, json.dumps(manifest).encode())
        server.routes[f"/v2/hostile/path/blobs/{digest}"] = (200, {}, layer)
        _build_fails(modal.Image.from_registry(f"{server.host}/hostile/path:1"), "not by a sha256:<64 hex digits>")
        assert not [path for path, _ in server.requests if "/blobs/" in path and "victim" in path]
    assert victim.read_text() == "intact\n"
    victim.unlink()


# Layers: what they unpack to ----------------------------------------------------------------

@pytest.fixture(scope="module")
def gzip_bomb():
    """1 GiB of zeros in 1024 files, gzipped to about 1 MB: the layer of the report."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts, zeros = [], bytes(MiB)
    for number in range(1024):
        info = tarfile.TarInfo(f"bomb/{number}")
        info.size = MiB
        parts += [compressor.compress(info.tobuf(format=tarfile.GNU_FORMAT)), compressor.compress(zeros)]
    parts.append(compressor.compress(bytes(2 * tarfile.BLOCKSIZE)))
    return b"".join(parts) + compressor.flush()


def test_gzip_bomb(registry, attack, gzip_bomb):
    assert len(gzip_bomb) < 2 * MiB
    registry.push("bomb", [(gzip_bomb, oci.LAYER_GZIP)])
    attack.setenv("PYSANDBOX_LAYER_UNPACKED_MAX", str(64 * MiB))
    _build_fails(registry.image("bomb"), "would unpack to more than 67108864 bytes.*PYSANDBOX_LAYER_UNPACKED_MAX")


def _sparse_layer(size):
    """One GNU sparse (pax 1.0) file of `size` bytes holding 512 bytes of data at its end."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("GNUSparseFile.0/huge")
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "huge",
                            "GNU.sparse.realsize": str(size)}
        body = (b"1\n%d\n512\n" % (size - 512)).ljust(512, b"\0") + b"x" * 512
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def test_huge_sparse_member_at_the_default_bound(registry, attack):
    """A 1 TiB sparse file in a 3 KB layer: counted at its full size, refused before it is written."""
    registry.push("sparse", [(gzip.compress(_sparse_layer(TiB)), oci.LAYER_GZIP)])
    _build_fails(registry.image("sparse"), "would unpack to more than 17179869184 bytes .*'huge', 1099511627776 "
                 "bytes.*PYSANDBOX_LAYER_UNPACKED_MAX")


def test_member_declaring_more_than_the_bound_with_no_data(registry, attack):
    """A header promising 1 TiB, then the end of the layer: refused from the header."""
    info = tarfile.TarInfo("promise")
    info.size = TiB
    registry.push("promise", [(info.tobuf(format=tarfile.GNU_FORMAT) + bytes(2 * tarfile.BLOCKSIZE), oci.LAYER)])
    _build_fails(registry.image("promise"), "PYSANDBOX_LAYER_UNPACKED_MAX")


def _tiny_files(count, prefix="f"):
    return gzip.compress(oci.tar([(f"{prefix}{number}", b"", 0o644) for number in range(count)]))


def test_very_many_files_in_a_layer(registry, attack):
    registry.push("many", [(_tiny_files(5000), oci.LAYER_GZIP)])
    attack.setenv("PYSANDBOX_LAYER_ENTRIES_MAX", "1000")
    _build_fails(registry.image("many"), "would unpack to more than 1000 entries.*PYSANDBOX_LAYER_ENTRIES_MAX")
    attack.delenv("PYSANDBOX_LAYER_ENTRIES_MAX")
    registry.image("many").build()


@pytest.mark.parametrize("variable, layers, message", [
    ("PYSANDBOX_IMAGE_ENTRIES_MAX", [_tiny_files(600, "a"), _tiny_files(600, "b")], "more than 1000 entries"),
    ("PYSANDBOX_IMAGE_UNPACKED_MAX", [gzip.compress(oci.tar([("a", bytes(6 * MiB), 0o644)])),
                                      gzip.compress(oci.tar([("b", bytes(6 * MiB), 0o644)]))],
     "more than 10485760 bytes"),
])
def test_whole_image_bounds(registry, attack, variable, layers, message):
    """Each layer within the layer bounds, all of them together over the image's."""
    name = variable.lower().replace("_", "-")
    registry.push(name, [(layer, oci.LAYER_GZIP) for layer in layers])
    attack.setenv(variable, "1000" if "ENTRIES" in variable else str(10 * MiB))
    _build_fails(registry.image(name), f"the image's layers would unpack to {message}.*{variable}")


def test_pax_header_bomb_hits_the_memory_bound(registry, attack):
    """tarfile reads a pax header into memory whole: a 512 MiB one (half a MB gzipped) meets the
    unpacker's address-space bound instead of the host's memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    length = 512 * MiB
    prefix = b"%d comment=" % length
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, length
    parts = [compressor.compress(header.tobuf(format=tarfile.USTAR_FORMAT) + prefix)]
    filler, left = b"x" * (16 * MiB), length - len(prefix) - 1
    while left:
        parts.append(compressor.compress(filler[:min(left, len(filler))]))
        left -= min(left, len(filler))
    parts.append(compressor.compress(b"\n" + tarfile.TarInfo("after").tobuf(format=tarfile.USTAR_FORMAT)
                                     + bytes(2 * tarfile.BLOCKSIZE)))
    registry.push("pax-bomb", [(b"".join(parts) + compressor.flush(), oci.LAYER_GZIP)])
    attack.setenv("PYSANDBOX_UNPACK_MEMORY_MAX", str(256 * MiB))
    _build_fails(registry.image("pax-bomb"), "more than 268435456 bytes of memory.*PYSANDBOX_UNPACK_MEMORY_MAX")
