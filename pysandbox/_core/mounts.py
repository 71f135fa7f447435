"""Reaching into a running sandbox's mount namespace: images mounted at a path
(Sandbox.mount_image, unmount_image) and directories copied out (snapshot_directory).

Nothing in the sandbox can mount (no CAP_SYS_ADMIN, and the seccomp filter refuses the
mount calls), so the host does it: sandbox-mount (native/mount/mount_main.c) joins the
namespaces of the sandbox's init through a pidfd init hands out (InitClient.pidfd), as the
owner of those namespaces and with no right over the host's, and attaches an overlay of the
image's layers with a writable layer of its own, `mounts/<n>/` in the sandbox directory
(removed at unmount and by the supervisor's teardown), found by path in a private copy of the
host's mount namespace (an overlay takes only mounts of its own namespace). Paths inside resolve
in the sandbox's root, never following a symlink out of it.
`mounts/table.json` lists what mount_image attached (path, kernel mount id): unmount_image
detaches only those, never a volume, /proc or a mask the runner put there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import subprocess
from pathlib import Path, PurePosixPath
from typing import Iterator, List, Optional, Sequence, Set

from .. import bounds, settings
from .._state import files, paths, records
from ..exception import Error, InvalidError, ResourceExhaustedError, TimeoutError
from .initclient import InitClient

HELPER_TIMEOUT_S = 60  # attach and detach are a few syscalls; a stuck helper is killed


def sandbox_path(path: object, what: str) -> str:
    """`path` checked as Modal checks it (absolute; not `/` for a mount), in one spelling."""
    if isinstance(path, PurePosixPath):
        path = path.as_posix()
    if not isinstance(path, str) or "\0" in path:
        raise InvalidError(f"{what} path must be an absolute path string, got {path!r}")
    if not path.startswith("/"):
        raise InvalidError(f"{what} path must be absolute; got: {path}")
    return PurePosixPath(path).as_posix()


async def mount(client: InitClient, path: str, lowers: Sequence[str]) -> None:
    """The image of `lowers` (layer directories, bottom first) at `path`, writable, in the sandbox."""
    mounts = paths.SandboxDir.of(client.sandbox_id).mounts
    with _table(mounts) as table:
        taken = [int(name) for name in os.listdir(mounts) if name.isdigit()]  # a layer left by a failed removal too
        layer = mounts / str(1 + max([entry["dir"] for entry in table] + taken, default=0))
        try:
            _make_layer(layer, lowers[-1] if lowers else None)
            argv = ["--attach", path, "--upper", str(layer / "rootfs"), "--work", str(layer / "work")]
            for lower in [*reversed(lowers), *(() if lowers else [str(layer / "empty")])]:  # top first
                argv += ["--lower", lower]
            out = await _helper(client, argv, [], f"mount_image({path!r})")
            table.append({"path": path, "mnt_id": int(out), "dir": int(layer.name), "lowers": list(lowers)})
        except BaseException:
            _remove_quietly(layer)
            raise


async def unmount(client: InitClient, path: str) -> None:
    """Detach what mount() attached at exactly `path` (the latest, if several)."""
    mounts = paths.SandboxDir.of(client.sandbox_id).mounts
    with _table(mounts) as table:
        mine = [entry for entry in table if entry["path"] == path]
        if not mine:
            raise InvalidError(f"No image is mounted at {path!r}: unmount_image() takes the exact path "
                               "passed to mount_image().")
        await _helper(client, ["--detach", path, "--mnt-id", str(mine[-1]["mnt_id"])], [],
                      f"unmount_image({path!r})")
        table.remove(mine[-1])
        _remove_quietly(mounts / str(mine[-1]["dir"]))


async def copy_directory(client: InitClient, path: str, dest: Path, timeout: float) -> None:
    """The directory `path` of the sandbox copied into `dest` (a layer's rootfs being built)."""
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        argv = ["--copy", path, "--dest", str(fd),
                "--max-bytes", str(bounds.get("snapshot_directory_bytes")),
                "--max-entries", str(bounds.get("snapshot_directory_entries"))]
        await _helper(client, argv, [fd], f"snapshot_directory({path!r})", timeout)
    finally:
        os.close(fd)


def mounted_layers(sandbox_id: str) -> Set[str]:
    """Ids of the layers of the images mounted in the sandbox (prune must keep them)."""
    try:
        table = files.read_json(paths.SandboxDir.of(sandbox_id).mounts / "table.json", "mounted images")
    except (FileNotFoundError, Error):
        return set()
    return {os.path.basename(os.path.dirname(lower)) for entry in table.get("mounts", ())
            for lower in entry.get("lowers", ()) if isinstance(lower, str)}


@contextlib.contextmanager
def _table(mounts: Path) -> Iterator[list]:
    """The sandbox's table of attached images, locked (flock on `mounts/`), written back if changed."""
    files.ensure_dir(mounts)
    fd = os.open(mounts, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            table = files.read_json(mounts / "table.json", "mounted images")["mounts"]
        except FileNotFoundError:
            table = []
        before = list(table)
        yield table
        if table != before:
            files.write_json_atomic(mounts / "table.json", {"mounts": table}, durable=False)
    finally:
        os.close(fd)


def _make_layer(layer: Path, top: Optional[str]) -> None:
    """A mount's writable layer; overlayfs shows the mount's root with its upper root's mode
    and owner, so these are the image's top layer's (what a snapshot's directory had)."""
    layer.mkdir(mode=0o700)
    for name in ("rootfs", "work", *(() if top else ("empty",))):
        (layer / name).mkdir(mode=0o755)
        files.give_to_sandbox_owner(layer / name)
    if top is not None:
        info = os.stat(top)
        os.chmod(layer / "rootfs", stat.S_IMODE(info.st_mode))
        if os.geteuid() == 0:
            os.chown(layer / "rootfs", info.st_uid, info.st_gid)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        files.remove_tree(path)


async def _helper(client: InitClient, argv: List[str], fds: List[int], what: str,
                  timeout: Optional[float] = None) -> str:
    """Run sandbox-mount in the sandbox's namespaces; its stdout, or the error it reports."""
    pidfd = await client.pidfd()
    try:
        owner = ["--as-sandbox-root"] if os.geteuid() == 0 else []
        command = [settings.native_binary("sandbox-mount"), "--pidfd", str(pidfd), *owner, *argv]
        try:
            result = subprocess.run(command, pass_fds=[pidfd, *fds], capture_output=True, text=True, env={},
                                    timeout=timeout or HELPER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{what} did not finish within {timeout or HELPER_TIMEOUT_S}s.") from None
    finally:
        os.close(pidfd)
    if result.returncode == 0:
        return result.stdout.strip()
    if result.stdout.startswith(f"E {errno.ESRCH} "):  # init is gone: the sandbox ended meanwhile
        raise await records.finished_error(client.sandbox_id)
    raise _error(result, what)


def _error(result: subprocess.CompletedProcess, what: str) -> Exception:
    return helper_error(result.stdout, result.returncode, result.stderr, what)


def helper_error(stdout: str, code: int, stderr: str, what: str) -> Exception:
    """The exception for a helper's failure: sandbox-mount's, or sandbox-untree's (the same report on stdout)."""
    words = stdout.split(maxsplit=2)
    if code == 3 and len(words) == 2:  # a bound: "B bytes" or "B entries"
        return bound_error(words[1], what)
    if len(words) == 3 and words[0] == "E" and words[1].isdigit():
        return path_error(int(words[1]), words[2].strip(), what)
    return InvalidError(f"{what} failed: {stderr.strip() or code}")


def bound_error(which: str, what: str) -> ResourceExhaustedError:
    """snapshot_directory's bound `which` ("bytes" or "entries") passed."""
    name = f"snapshot_directory_{which}"
    return ResourceExhaustedError(f"{what} copies more than {bounds.get(name)} {which}, the bound "
                                  f"{bounds.variable(name)}; raise it or snapshot a smaller directory.")


def path_error(err: int, where: str, what: str) -> InvalidError:
    reason = {errno.EROFS: "it is on a read-only part of the sandbox (on the host image, system "
                           "directories are; use a path such as /mnt/x, /data or /tmp/x)",
              errno.ENOTDIR: "it or one of its parents is not a directory",
              errno.ENOENT: "it does not exist (or a symlink on the way leads nowhere)",
              errno.ELOOP: "a symlink on the way loops or leaves through /proc",
              errno.EOPNOTSUPP: "it is on /proc or /sys, the kernel's views of processes and devices, which are "
                                "not copied: snapshot a directory of files"}.get(err, os.strerror(err))
    return InvalidError(f"{what} failed at {where}: {reason}")
