"""Image references (`python:3.12-slim`, `ghcr.io/org/app@sha256:...`) and where to fetch them.

Docker Hub references (no registry host, or docker.io) normalise to
`registry-1.docker.io/library/NAME`. PYSANDBOX_REGISTRY_MIRROR (a URL) serves
them from another registry instead, for air-gapped hosts. Plain HTTP is used
only for loopback registries and hosts listed in PYSANDBOX_INSECURE_REGISTRIES
(comma-separated host[:port]); everything else is HTTPS.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Optional
from urllib.parse import urlsplit

import attrs

from ..exception import InvalidError

DOCKER_HUB = "registry-1.docker.io"
_HUB_NAMES = ("docker.io", "index.docker.io", DOCKER_HUB)
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?\Z")  # docker's domain


@attrs.frozen
class Reference:
    registry: str  # host[:port]
    repository: str
    tag: Optional[str]
    digest: Optional[str]

    @property
    def version(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}" + (f"@{self.digest}" if self.digest else f":{self.tag}")


def parse(text: str) -> Reference:
    if not isinstance(text, str) or not text or text != text.strip():
        raise InvalidError(f"Invalid image reference {text!r}")
    rest, digest = (text.split("@", 1) + [None])[:2] if "@" in text else (text, None)
    if digest is not None and not DIGEST.match(digest):
        raise InvalidError(f"Invalid image reference {text!r}: the digest must be sha256:<64 hex digits>")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.match(tag):
            raise InvalidError(f"Invalid image reference {text!r}: bad tag {tag!r}")
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, parts = parts[0], parts[1:]
        if not _HOST.match(registry):
            raise InvalidError(f"Invalid image reference {text!r}: {registry!r} is not a registry host[:port] "
                               "(for a Dockerfile or a local path, use Image.from_dockerfile)")
    else:
        registry = DOCKER_HUB
    if registry in _HUB_NAMES:
        registry = DOCKER_HUB
        if len(parts) == 1:
            parts = ["library"] + parts
    if not parts or not all(_COMPONENT.match(p) for p in parts):
        raise InvalidError(f"Invalid image reference {text!r}: repository names are lowercase letters, digits "
                           "and separators (., _, -), like `python:3.12-slim` or `ghcr.io/org/app:tag`")
    return Reference(registry, "/".join(parts), tag if tag or digest else "latest", digest)


def base_url(ref: Reference) -> str:
    """Where the registry of `ref` is reached (the mirror for Docker Hub, if configured)."""
    if ref.registry == DOCKER_HUB:
        mirror = os.environ.get("PYSANDBOX_REGISTRY_MIRROR")
        if mirror:
            parts = urlsplit(mirror)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidError(f"PYSANDBOX_REGISTRY_MIRROR={mirror!r} must be a URL like http://127.0.0.1:5000")
            if parts.scheme == "http" and not plain_http_allowed(parts.netloc):
                raise InvalidError(f"PYSANDBOX_REGISTRY_MIRROR={mirror!r}: plain HTTP is only used for loopback "
                                   "registries and hosts listed in PYSANDBOX_INSECURE_REGISTRIES.")
            return mirror.rstrip("/")
        return f"https://{DOCKER_HUB}"
    scheme = "http" if plain_http_allowed(ref.registry) else "https"
    return f"{scheme}://{ref.registry}"


def plain_http_allowed(netloc: str) -> bool:
    host = urlsplit(f"//{netloc}").hostname or ""
    listed = [h.strip() for h in os.environ.get("PYSANDBOX_INSECURE_REGISTRIES", "").split(",") if h.strip()]
    if netloc in listed or host in listed or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
