"""snapshot_directory() under gVisor: the directory's tree comes out as a byte stream.

The host cannot join a gVisor sandbox's namespaces (they are its Sentry's), so it cannot copy the
directory as sandbox-mount --copy does. Instead init walks it, beneath the directory's fd and never
following a symlink (native/common/tree.c, the walk --copy uses), and writes the tree into a socket
the host sends (InitClient.tree). The stream is the sandbox's to forge: sandbox root can kill init's
walker or make the directory anything while it runs. So the host only stores its bytes, bounded in
size and time, and sandbox-untree makes the tree from them in a helper sandbox under bwrap (the
sandbox owner's identity, no network), beneath the new layer's directory, counting the bounds again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .. import _aio, agent, bounds, settings
from .._core import mounts
from .._core.initclient import InitClient
from .._core.spec import Bind
from .._state import files
from ..exception import SandboxTimeoutError, TimeoutError
from . import build

UNTREE = "/pysandbox-untree"
STREAM = "/stream"
_NAMED = agent.TREE_RECORD.size + 255 + 4096  # an entry's record, its name, a symlink's target


def stream_limit(max_bytes: int, max_entries: int) -> int:
    """The most bytes an honest stream of a tree within the bounds takes: each entry's record with the
    longest name and target, its file data, one record per full chunk of it and one per file's end."""
    return max_bytes + (max_entries + 1) * (_NAMED + agent.TREE_RECORD.size) \
        + (max_bytes // agent.TREE_CHUNK + 1) * agent.TREE_RECORD.size


async def copy_directory(client: InitClient, path: str, temp: Path, timeout: float) -> None:
    """The directory `path` of the gVisor sandbox `client` speaks to, made in `temp`'s rootfs (a layer being
    built); the stream is kept in `temp`'s work directory, which publishing removes."""
    what = f"snapshot_directory({path!r})"
    max_bytes, max_entries = bounds.get("snapshot_directory_bytes"), bounds.get("snapshot_directory_entries")
    stream = temp / "work" / "tree"
    try:
        sock = await client.tree(path)
    except OSError as exc:
        raise mounts.path_error(exc.errno or 0, path, what) from None
    deadline = time.monotonic() + timeout  # the stream's and the layer's: a forged stream may be slow to parse
    with sock:
        await _receive(sock, stream, stream_limit(max_bytes, max_entries), deadline, what)
    left = deadline - time.monotonic()
    if left <= 0:
        raise _timed_out(what)
    argv = (UNTREE, "--from", STREAM, "--dest", "/dst", "--max-bytes", str(max_bytes),
            "--max-entries", str(max_entries))
    volumes = (Bind(settings.native_binary("sandbox-untree"), UNTREE, True), Bind(str(stream), STREAM, True),
               Bind(str(temp / "rootfs"), "/dst"))
    context = build.BuildContext(temp, None, lambda line: None)
    try:
        await _aio.offload(lambda: context.in_sandbox(argv, what, env={}, rootfs=None, workdir="/",
                                                      volumes=volumes, network="none", runner=build.copy_runner(),
                                                      timeout=left))
    except SandboxTimeoutError:
        raise _timed_out(what) from None
    except build.StepFailed as failed:
        raise mounts.helper_error(failed.tail[0] if failed.tail else "", failed.code,
                                  "\n".join(failed.tail), what) from None


async def _receive(sock, stream: Path, limit: int, deadline: float, what: str) -> None:
    """The stream from `sock` into the new file `stream`, at most `limit` bytes, until `deadline`."""
    sock.setblocking(False)
    fd = os.open(stream, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        files.give_to_sandbox_owner(fd)
        received = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not await _aio.readable(sock.fileno(), timeout=left):
                raise _timed_out(what)
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                return
            received += len(chunk)
            if received > limit:
                raise mounts.bound_error("bytes", what)
            files.write_all(fd, chunk)
    finally:
        os.close(fd)


def _timed_out(what: str) -> TimeoutError:
    """The call's timeout passed: while the stream arrived, or while the layer was made from it."""
    return TimeoutError(f"{what} did not finish within its timeout.")
