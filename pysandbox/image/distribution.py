"""A client of the OCI distribution API: manifests (OCI and Docker v2, indexes
and manifest lists resolved to this host's platform, linux/amd64 or linux/arm64), the image config, and blobs.

A registry is on the far side of the trust boundary: whoever runs it, or sits
on its plain-HTTP path, chooses every byte. So every read is bounded (bounds.py:
manifests and token answers, configs, layer sizes and counts, checked against
the manifest before anything is downloaded), every descriptor is checked
(a digest is `sha256:<64 hex>`, so it can name no path), every blob is read to
exactly its declared size with its sha256 checked as it streams, and a blob
reaches its final name only once it matched.

Transient failures (a connection reset or timed out, HTTP 429 or 5xx, a blob cut
short) are retried with bounded exponential backoff (bounds.py registry_retries, registry_backoff_max_s);
an interrupted blob resumes with a Range request where the registry allows it,
else starts over; a refused connection or an unknown host fails at once.

Credentials (REGISTRY_USERNAME/REGISTRY_PASSWORD, else the Docker config's for
that registry, read only when the registry answers 401: docker_config.py) go, as Basic authorization,
only to the registry itself, to a token realm over HTTPS, or to a plain-HTTP
realm on the registry's own host when the registry itself is reached over plain
HTTP (loopback or PYSANDBOX_INSECURE_REGISTRIES). A realm anywhere else is an
ImageBuildError, never a silent leak; a registry's redirect to another origin
(blobs live on CDNs) drops the Authorization header, and a redirect from HTTPS
down to plain HTTP is refused.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import platform
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from .. import bounds
from ..exception import ImageBuildError, InvalidError, NotFoundError
from . import docker_config
from .reference import DIGEST, DOCKER_HUB, Reference, base_url, plain_http_allowed

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[0], MANIFEST_TYPES[2]
TIMEOUT = 60
# The host's architecture in the OCI platform's terms (uname's x86_64 and aarch64 are amd64 and arm64).
OCI_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


def platform_wanted() -> dict:
    machine = platform.machine()
    return {"os": "linux", "architecture": OCI_ARCHITECTURES.get(machine, machine)}


CHUNK = 1 << 20
BACKOFF_FIRST_S = 0.25
_PERMANENT = (ConnectionRefusedError, socket.gaierror, ssl.SSLCertVerificationError)  # retrying changes nothing
_TOKEN = re.compile(r"^[\x21-\x7e]+\Z")  # it becomes a header value: no spaces, no CR/LF


class Descriptor(NamedTuple):
    digest: str
    size: int


def unreachable(ref: Reference, base: str, reason: object) -> str:
    """Why a registry could not be reached, and what to do about it."""
    message = f"Cannot reach the registry {base}: {reason}"
    if ref.registry != DOCKER_HUB:
        return f"{message}; check the registry's name and this host's network."
    if base != f"https://{DOCKER_HUB}":
        return f"{message} (PYSANDBOX_REGISTRY_MIRROR, which serves Docker Hub names): check that it is running."
    return (f"{message}; check this host's network, or set PYSANDBOX_REGISTRY_MIRROR to a registry that serves "
            "Docker Hub's images (e.g. http://127.0.0.1:5000).")


class Client:
    def __init__(self, ref: Reference, credentials: Optional[Tuple[str, str]] = None) -> None:
        self.ref = ref
        self.base = base_url(ref)
        self.credentials = credentials
        self._docker_config = credentials is None  # looked up there on the first 401
        self.authorization: Optional[str] = None
        self._opener = urllib.request.build_opener(_Redirects())

    def _open(self, path: str, accept: str = "*/*", headers: Optional[Dict[str, str]] = None):
        url = f"{self.base}/v2/{self.ref.repository}/{path}"
        authenticated, failures = False, 0
        while True:
            sent = {"Accept": accept, **(headers or {})}
            if self.authorization:
                sent["Authorization"] = self.authorization
            try:
                return self._opener.open(urllib.request.Request(url, headers=sent), timeout=TIMEOUT)
            except urllib.error.HTTPError as exc:
                exc.close()
                challenge = exc.headers.get("WWW-Authenticate", "")
                if exc.code == 401 and not authenticated and self._authenticate(challenge):
                    authenticated = True
                    continue
                if exc.code in (401, 403, 404):
                    raise NotFoundError(f"Image {self.ref} not found in {self.base} (HTTP {exc.code}); "
                                        "check the name and tag, and registry credentials.") from None
                if exc.code != 429 and exc.code < 500:
                    raise ImageBuildError(f"Registry {self.base} answered HTTP {exc.code} for {url}") from None
                failures = self._backoff(failures, f"HTTP {exc.code} for {url}", exc.headers.get("Retry-After"))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, _PERMANENT) or isinstance(reason, str):
                    raise ImageBuildError(unreachable(self.ref, self.base, reason)) from None
                failures = self._backoff(failures, f"cannot reach it: {reason}")

    def _backoff(self, failures: int, what: str, retry_after: Optional[str] = None) -> int:
        """Sleep before retry number `failures` + 1, or raise once the retries are spent."""
        retries = bounds.get("registry_retries")
        if failures >= retries:
            raise ImageBuildError(f"Registry {self.base} still failing after {retries} retries ({what}); "
                                  f"{bounds.variable('registry_retries')} sets how many.")
        delay = BACKOFF_FIRST_S * 2 ** failures
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, int(retry_after))  # the registry's own pace, within our cap
        time.sleep(min(delay, bounds.get("registry_backoff_max_s")))
        return failures + 1

    def _basic(self) -> Optional[str]:
        if self.credentials is None and self._docker_config:
            self._docker_config = False
            self.credentials = docker_config.credentials_for(self.ref.registry)
        if not self.credentials:
            return None
        raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _authenticate(self, challenge: str) -> bool:
        """Answer a 401: basic credentials as they are, or a bearer token from the realm."""
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            self.authorization = self._basic()
            return self.authorization is not None
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if scheme != "bearer" or "realm" not in params:
            return False
        realm = params["realm"]
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImageBuildError(f"Registry {self.base} names the token realm {realm!r}, not an http(s) URL.")
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        query.setdefault("scope", f"repository:{self.ref.repository}:pull")
        request = urllib.request.Request(realm + ("&" if parts.query else "?") + urllib.parse.urlencode(query))
        basic = self._basic()
        if basic is not None:
            if not credentials_allowed(realm, self.base):
                raise ImageBuildError(
                    f"Registry {self.base} asks for credentials to be sent to {realm}: pysandbox sends registry "
                    "credentials only to a token realm over HTTPS, or over plain HTTP on the registry's own "
                    "host. Use an HTTPS realm, or pull without secret= if the image is public.")
            request.add_header("Authorization", basic)
        try:
            with self._opener.open(request, timeout=TIMEOUT) as response:
                answer = json.loads(_read(response, "registry_manifest_bytes", f"the token answer of {realm}"))
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError, RecursionError) as exc:
            raise ImageBuildError(f"Registry authentication at {realm} failed: {exc}") from None
        token = (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) else None
        if token is not None and not (isinstance(token, str) and _TOKEN.match(token)):
            raise ImageBuildError(f"Registry authentication at {realm} answered a malformed token.")
        self.authorization = f"Bearer {token}" if token else None
        return bool(token)

    def manifest(self) -> Tuple[List[Descriptor], dict]:
        """(the layers of the manifest for this host's platform, the image config), every bound checked."""
        manifest = self._manifest(self.ref.version, self.ref.digest)
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            entries, wanted = manifest.get("manifests"), platform_wanted()
            chosen = [m for m in entries if isinstance(m, dict) and isinstance(m.get("platform"), dict)
                      and {k: m["platform"].get(k) for k in wanted} == wanted] if isinstance(entries, list) else []
            if not chosen:
                raise InvalidError(f"Image {self.ref} has no {wanted['os']}/{wanted['architecture']} variant "
                                   "(this host's platform).")
            digest = self._descriptor(chosen[0]).digest
            manifest = self._manifest(digest, digest)
        if "layers" not in manifest or "config" not in manifest:
            raise ImageBuildError(f"Image {self.ref}: unsupported manifest (schema {manifest.get('schemaVersion')!r}).")
        if not isinstance(manifest["layers"], list):
            raise ImageBuildError(f"Image {self.ref}: the manifest's layers are not a list.")
        layers = [self._descriptor(layer) for layer in manifest["layers"]]
        self._check_layers(layers)
        config = self._json(self.blob_bytes(self._descriptor(manifest["config"]), "registry_config_bytes"), "config")
        if not isinstance(config, dict):
            raise ImageBuildError(f"Image {self.ref}: the image config is not a JSON object.")
        return layers, config

    def _check_layers(self, layers: List[Descriptor]) -> None:
        """Every size bound, from the manifest alone: nothing is downloaded from an image over one."""
        largest, total = max((layer.size for layer in layers), default=0), sum(layer.size for layer in layers)
        for name, value, what in (("registry_layers", len(layers), f"{len(layers)} layers"),
                                  ("registry_layer_bytes", largest, f"a layer of {largest} bytes"),
                                  ("image_unpacked_bytes", total, f"layers of {total} bytes together")):
            if value > bounds.get(name):
                raise ImageBuildError(f"Image {self.ref} has {what}, over the bound of {bounds.get(name)} "
                                      f"({bounds.variable(name)}); raise it to pull this image.")

    def _descriptor(self, value: object) -> Descriptor:
        digest = value.get("digest") if isinstance(value, dict) else None
        size = value.get("size") if isinstance(value, dict) else None
        if not isinstance(digest, str) or not DIGEST.match(digest):
            raise ImageBuildError(f"Image {self.ref}: the manifest names a blob by {digest!r}, "
                                  "not by a sha256:<64 hex digits> digest.")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ImageBuildError(f"Image {self.ref}: the manifest gives blob {digest} no valid size ({size!r}).")
        return Descriptor(digest, size)

    def _manifest(self, version: str, digest: Optional[str]) -> dict:
        with self._open(f"manifests/{version}", ", ".join(MANIFEST_TYPES)) as response:
            body = _read(response, "registry_manifest_bytes", f"the manifest of {self.ref}")
        if digest is not None:
            _verify(body, digest, f"manifest of {self.ref}")
        manifest = self._json(body, "manifest")
        if not isinstance(manifest, dict):
            raise ImageBuildError(f"Image {self.ref}: the registry sent a manifest that is not a JSON object.")
        return manifest

    def _json(self, body: bytes, what: str):
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise ImageBuildError(f"Image {self.ref}: the registry sent a {what} that is not JSON") from None

    def blob_bytes(self, blob: Descriptor, bound: str) -> bytes:
        """A small blob (the config) in memory, bounded by `bound`, its size and digest checked."""
        if blob.size > bounds.get(bound):
            raise ImageBuildError(f"Image {self.ref}: blob {blob.digest} is {blob.size} bytes, over the bound of "
                                  f"{bounds.get(bound)} ({bounds.variable(bound)}); raise it to pull this image.")
        with self._open(f"blobs/{blob.digest}") as response:
            body = _read(response, bound, f"blob {blob.digest} of {self.ref}")
        if len(body) != blob.size:
            raise ImageBuildError(f"Image {self.ref}: blob {blob.digest} is {len(body)} bytes, "
                                  f"not the {blob.size} its manifest declares")
        _verify(body, blob.digest, f"blob of {self.ref}")
        return body

    def download(self, blob: Descriptor, dest: Path, progress: Optional[Callable[[int], None]] = None) -> None:
        """A blob into `dest`: read to exactly its declared size, its digest checked as it streams,
        `progress` told the bytes received so far. An interrupted transfer resumes from where it
        stopped (a Range request), or starts over where the registry sends the whole blob again.
        It is written as `dest`.partial and renamed only when it matched, so a bad, short or
        interrupted download leaves nothing."""
        partial = dest.with_name(dest.name + ".partial")
        hasher, received, failures = hashlib.sha256(), 0, 0
        try:
            with open(partial, "xb") as out:
                while True:
                    with self._open(f"blobs/{blob.digest}",
                                    headers={"Range": f"bytes={received}-"} if received else None) as response:
                        if received and not _resumes(response, received):
                            if response.status == 206:
                                raise ImageBuildError(f"Image {self.ref}: the registry answered a request for layer "
                                                      f"{blob.digest} from byte {received} with another range")
                            out.seek(0)  # the whole blob again: start over
                            out.truncate()
                            hasher, received = hashlib.sha256(), 0
                        if _declared_length(response) > blob.size - received:
                            raise ImageBuildError(
                                f"Image {self.ref}: the registry announces {_declared_length(response)} bytes for "
                                f"layer {blob.digest}, more than the {blob.size} of its manifest")
                        received, cut = self._stream(response, blob, out, hasher, received, progress)
                    if received == blob.size:
                        break
                    failures = self._backoff(failures, f"layer {blob.digest} cut short at {received} of "
                                                       f"{blob.size} bytes ({cut or 'the connection closed'})")
        except BaseException:
            _remove(partial)
            raise
        if "sha256:" + hasher.hexdigest() != blob.digest:
            _remove(partial)
            raise ImageBuildError(f"Image {self.ref}: layer {blob.digest} arrived corrupted (digest mismatch)")
        os.rename(partial, dest)

    def _stream(self, response, blob: Descriptor, out, hasher, received: int,
                progress: Optional[Callable[[int], None]]) -> Tuple[int, Optional[str]]:
        """Copy `response` into `out` until it ends: (bytes received in all, why it was cut short or None)."""
        while True:
            try:
                chunk = response.read(min(CHUNK, blob.size - received + 1))
            except (OSError, http.client.HTTPException) as exc:
                return received, str(exc) or type(exc).__name__
            if not chunk:
                return received, None
            received += len(chunk)
            if received > blob.size:
                raise ImageBuildError(f"Image {self.ref}: layer {blob.digest} is larger than the "
                                      f"{blob.size} bytes its manifest declares")
            hasher.update(chunk)
            out.write(chunk)
            if progress is not None:
                progress(received)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Registries redirect blob downloads to CDNs: follow, but carry the Authorization header
    only within one origin, and never step down from HTTPS to plain HTTP a host may not use."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        old, target = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(new.full_url)
        if target.scheme not in ("http", "https") or (
                target.scheme == "http" and old.scheme == "https" and not plain_http_allowed(target.netloc)):
            raise ImageBuildError(f"Registry redirect from {req.full_url} to {new.full_url} refused: "
                                  "only HTTPS, or plain HTTP to loopback and PYSANDBOX_INSECURE_REGISTRIES hosts.")
        if (old.scheme, old.netloc) != (target.scheme, target.netloc):
            new.remove_header("Authorization")
        return new


def credentials_allowed(realm: str, base: str) -> bool:
    """Whether registry credentials may go to the token realm `realm` of the registry at `base`:
    over HTTPS, or over plain HTTP to the registry's own host when it is itself plain HTTP."""
    to, registry = urllib.parse.urlsplit(realm), urllib.parse.urlsplit(base)
    if to.scheme == "https":
        return True
    return to.scheme == registry.scheme == "http" and to.hostname is not None and to.hostname == registry.hostname


def _resumes(response, offset: int) -> bool:
    """Whether `response` is the rest of a blob from byte `offset` (206 with that Content-Range);
    else it is the whole blob again."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range") or "")
    return response.status == 206 and match is not None and int(match.group(1)) == offset


def _declared_length(response) -> int:
    """The Content-Length of `response`, 0 when it has none (reads are bounded anyway)."""
    declared = (response.headers.get("Content-Length") or "").strip()
    return int(declared) if declared.isdigit() else 0


def _read(response, bound: str, what: str) -> bytes:
    """The whole body of `response`, refused beyond the bound called `bound`."""
    limit = bounds.get(bound)
    too_big = ImageBuildError(f"{what[0].upper()}{what[1:]} is larger than {limit} bytes, over the bound "
                              f"{bounds.variable(bound)}; raise it to pull this image.")
    if _declared_length(response) > limit:
        raise too_big
    try:
        body = response.read(limit + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise ImageBuildError(f"Reading {what} failed: {exc}") from None
    if len(body) > limit:
        raise too_big
    return body


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _verify(body: bytes, digest: str, what: str) -> None:
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise ImageBuildError(f"{what}: digest mismatch (expected {digest})")


def runtime_config(config: dict) -> Dict[str, object]:
    """The image config's Env, WorkingDir, Entrypoint and Cmd, as our layer config (each checked:
    strings without NUL bytes, in lists where the spec has lists)."""
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ImageBuildError("The image config's `config` is not a JSON object.")
    result: Dict[str, object] = {"env": dict(item.split("=", 1) for item in _strings(inner, "Env") if "=" in item)}
    workdir = inner.get("WorkingDir")
    if workdir:
        if not isinstance(workdir, str) or "\0" in workdir:
            raise ImageBuildError(f"The image config's WorkingDir {workdir!r} is not a path.")
        result["workdir"] = workdir if workdir.startswith("/") else "/" + workdir
    for key, ours in (("Entrypoint", "entrypoint"), ("Cmd", "cmd")):
        if inner.get(key):
            result[ours] = _strings(inner, key)
    return result


def _strings(inner: dict, key: str) -> List[str]:
    value = inner.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) and "\0" not in item for item in value):
        raise ImageBuildError(f"The image config's {key} is not a list of strings without NUL bytes.")
    return value
