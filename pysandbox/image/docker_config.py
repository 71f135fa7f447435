"""Registry credentials from the Docker client's config, as `docker pull` finds them: in
$DOCKER_CONFIG/config.json (default ~/.docker/config.json), a `credHelpers` entry for the
registry, else the `credsStore`, else the base64 `auth` (or username/password) of its `auths`
entry. A helper is `docker-credential-<name>` on the caller's PATH, run as `get` with the
server on stdin, with a fixed environment (settings.HOST_ENV and HOME), its answer bounded in
bytes and time (bounds.py). Read only when a registry asks for credentials (a 401)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional, Tuple

from .. import bounds, settings
from ..exception import ImageBuildError

DOCKER_HUB = "https://index.docker.io/v1/"
_HUB_NAMES = ("registry-1.docker.io", "index.docker.io", "docker.io")
_HELPER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _host_of(key: str) -> str:
    """An `auths`/`credHelpers` key (`host`, `https://host/v1/`) as the registry host it names."""
    host = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0].lower()
    return "registry-1.docker.io" if host in _HUB_NAMES else host


def credentials_for(registry: str) -> Optional[Tuple[str, str]]:
    """(username, password) for the registry at host[:port] `registry`, or None."""
    path = config_path()
    try:
        config = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ImageBuildError(f"Cannot read the Docker config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise ImageBuildError(f"The Docker config {path} is not a JSON object.")
    host = _host_of(registry)
    helpers = config.get("credHelpers") if isinstance(config.get("credHelpers"), dict) else {}
    helper = next((name for key, name in helpers.items() if _host_of(key) == host), None) or config.get("credsStore")
    if helper:
        return helper_credentials(str(helper), DOCKER_HUB if host == "registry-1.docker.io" else registry)
    auths = config.get("auths") if isinstance(config.get("auths"), dict) else {}
    entry = next((value for key, value in auths.items() if _host_of(key) == host and isinstance(value, dict)), None)
    if entry is None:
        return None
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ImageBuildError(f"The Docker config {path}: the `auth` of {registry} is not base64 "
                                  "of user:password.") from None
        return user, password
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return entry["username"], entry["password"]
    return None


def helper_credentials(helper: str, server: str) -> Optional[Tuple[str, str]]:
    """What `docker-credential-<helper> get` answers for `server` (None: it has none)."""
    if not _HELPER.match(helper):
        raise ImageBuildError(f"The Docker config names the credential helper {helper!r}, not a helper name.")
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise ImageBuildError(f"The Docker config names the credential helper {helper!r}, but "
                              f"docker-credential-{helper} is not on PATH.")
    code, out = _run_bounded([program, "get"], server.encode() + b"\n", f"docker-credential-{helper}")
    if code != 0:
        if b"credentials not found" in out.lower():
            return None
        raise ImageBuildError(f"docker-credential-{helper} get failed (exit {code}) for {server}: "
                              f"{out[:200].decode(errors='replace').strip()}")
    try:
        answer = json.loads(out)
        return str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ImageBuildError(f"docker-credential-{helper} answered {server} with something other than "
                              "its JSON {Username, Secret}.") from None


def _run_bounded(argv, stdin: bytes, what: str) -> Tuple[int, bytes]:
    """(exit code, stdout and stderr) of `argv`, killed with its process group past the bounds."""
    limit, seconds = bounds.get("credential_helper_output"), bounds.get("credential_helper_s")
    env = {**settings.HOST_ENV, "HOME": str(Path.home())}
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, start_new_session=True, close_fds=True)
    out, deadline = bytearray(), time.monotonic() + seconds
    try:
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ImageBuildError(f"{what} did not answer within {seconds} s "
                                      f"({bounds.variable('credential_helper_s')}).")
            ready, _, _ = select.select([process.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
            if len(out) > limit:
                raise ImageBuildError(f"{what} wrote more than {limit} bytes "
                                      f"({bounds.variable('credential_helper_output')}).")
        return process.wait(timeout=max(0.1, deadline - time.monotonic())), bytes(out)
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{what} did not exit within {seconds} s "
                              f"({bounds.variable('credential_helper_s')}).") from None
    finally:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        process.stdout.close()
