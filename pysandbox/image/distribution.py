"""A client of the OCI distribution API: manifests (OCI and Docker v2, indexes
and manifest lists resolved to linux/amd64), the image config, and blobs
downloaded with their sha256 verified. Anonymous or basic credentials, with
the bearer-token exchange registries such as Docker Hub ask for."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..exception import ImageBuildError, InvalidError, NotFoundError
from .reference import Reference, base_url

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[0], MANIFEST_TYPES[2]
TIMEOUT = 60
PLATFORM = {"os": "linux", "architecture": "amd64"}


class Client:
    def __init__(self, ref: Reference, credentials: Optional[Tuple[str, str]] = None) -> None:
        self.ref = ref
        self.base = base_url(ref)
        self.credentials = credentials
        self.authorization: Optional[str] = None

    def _open(self, path: str, accept: str = "*/*"):
        url = f"{self.base}/v2/{self.ref.repository}/{path}"
        for attempt in range(2):
            headers = {"Accept": accept}
            if self.authorization:
                headers["Authorization"] = self.authorization
            try:
                return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0 and self._authenticate(exc.headers.get("WWW-Authenticate", "")):
                    continue
                if exc.code in (401, 403, 404):
                    raise NotFoundError(f"Image {self.ref} not found in {self.base} (HTTP {exc.code}); "
                                        "check the name and tag, and registry credentials.") from None
                raise ImageBuildError(f"Registry {self.base} answered HTTP {exc.code} for {url}") from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise ImageBuildError(f"Cannot reach the registry {self.base}: {reason}") from None
        raise AssertionError("unreachable")

    def _authenticate(self, challenge: str) -> bool:
        """Answer a 401: basic credentials as they are, or a bearer token from the realm."""
        basic = None
        if self.credentials:
            raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
            basic = "Basic " + base64.b64encode(raw).decode()
        if challenge.lower().startswith("basic"):
            self.authorization = basic
            return basic is not None
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if not challenge.lower().startswith("bearer") or "realm" not in params:
            return False
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        query.setdefault("scope", f"repository:{self.ref.repository}:pull")
        request = urllib.request.Request(f"{params['realm']}?{urllib.parse.urlencode(query)}")
        if basic:
            request.add_header("Authorization", basic)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ImageBuildError(f"Registry authentication at {params['realm']} failed: {exc}") from None
        token = answer.get("token") or answer.get("access_token")
        self.authorization = f"Bearer {token}" if token else None
        return bool(token)

    def manifest(self) -> Tuple[dict, dict]:
        """(manifest for linux/amd64, image config)."""
        manifest = self._manifest(self.ref.version, self.ref.digest)
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            chosen = [m for m in manifest.get("manifests", [])
                      if {k: m.get("platform", {}).get(k) for k in PLATFORM} == PLATFORM]
            if not chosen:
                raise InvalidError(f"Image {self.ref} has no linux/amd64 variant.")
            manifest = self._manifest(chosen[0]["digest"], chosen[0]["digest"])
        if "layers" not in manifest or "config" not in manifest:
            raise ImageBuildError(f"Image {self.ref}: unsupported manifest (schema {manifest.get('schemaVersion')}).")
        config = json.loads(self.blob_bytes(manifest["config"]["digest"]))
        return manifest, config

    def _manifest(self, version: str, digest: Optional[str]) -> dict:
        with self._open(f"manifests/{version}", ", ".join(MANIFEST_TYPES)) as response:
            body = response.read()
        if digest is not None:
            _verify(body, digest, f"manifest of {self.ref}")
        try:
            return json.loads(body)
        except ValueError:
            raise ImageBuildError(f"Image {self.ref}: the registry sent a manifest that is not JSON") from None

    def blob_bytes(self, digest: str) -> bytes:
        with self._open(f"blobs/{digest}") as response:
            body = response.read()
        _verify(body, digest, f"blob of {self.ref}")
        return body

    def download(self, digest: str, dest: Path) -> None:
        """A blob into `dest`, its digest checked as it streams (a mismatch leaves nothing)."""
        algorithm, _, expected = digest.partition(":")
        if algorithm != "sha256":
            raise ImageBuildError(f"Image {self.ref}: unsupported digest {digest}")
        hasher = hashlib.sha256()
        with self._open(f"blobs/{digest}") as response, open(dest, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                hasher.update(chunk)
                out.write(chunk)
        if hasher.hexdigest() != expected:
            dest.unlink()
            raise ImageBuildError(f"Image {self.ref}: layer {digest} arrived corrupted (digest mismatch)")


def _verify(body: bytes, digest: str, what: str) -> None:
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise ImageBuildError(f"{what}: digest mismatch (expected {digest})")


def runtime_config(config: dict) -> Dict[str, object]:
    """The image config's Env, WorkingDir, Entrypoint and Cmd, as our layer config."""
    inner = config.get("config") or {}
    env = dict(item.split("=", 1) for item in inner.get("Env") or [] if "=" in item)
    result: Dict[str, object] = {"env": env}
    if inner.get("WorkingDir"):
        result["workdir"] = inner["WorkingDir"]
    for key, ours in (("Entrypoint", "entrypoint"), ("Cmd", "cmd")):
        if inner.get(key):
            result[ours] = list(inner[key])
    return result


def layer_digests(manifest: dict) -> List[str]:
    return [layer["digest"] for layer in manifest["layers"]]
