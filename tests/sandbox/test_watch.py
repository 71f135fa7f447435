"""Watching paths in a sandbox: sb.filesystem.watch() (Modal 1.6) and sb.watch() (1.5)."""

import asyncio
import gc
import os
import threading
import time

import pytest

import pysandbox as modal
from pysandbox import watch as watch_module
from pysandbox.exception import InvalidError, NotFoundError, SandboxFilesystemNotFoundError

Create, Modify, Remove = modal.FileWatchEventType.Create, modal.FileWatchEventType.Modify, modal.FileWatchEventType.Remove


def _watch_fds() -> int:
    """Descriptors this process reads watch events from: inotify's, or under gVisor the sockets init
    relays them into (pysandbox.watch._Watch)."""
    relayed = {fd for watch in gc.get_objects() if isinstance(watch, watch_module._Watch)
               for fd in list(watch.paths)}  # the watch's own thread may change its dict meanwhile
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target == "anon_inode:inotify" or (int(fd) in relayed and target.startswith("socket:"))
    return count


def _wait_for_watches(n: int) -> None:
    deadline = time.monotonic() + 30
    while _watch_fds() < n:
        assert time.monotonic() < deadline, "the watch never started"
        time.sleep(0.01)


def when_watching(*steps):
    """Run each (watches, shell command) step in a thread once that many watch fds exist."""
    def run():
        for watches, command in steps:
            _wait_for_watches(watches)
            sb, script = command
            assert sb.exec("sh", "-c", script).wait() == 0

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def collect(events, until):
    """Events up to and including the first that matches `until`."""
    seen = []
    for event in events:
        seen.append((event.type, event.paths))
        if until(event):
            break
    return seen


@pytest.mark.gvisor
@pytest.mark.rootless
def test_directory_watch_reports_children_and_collapses_renames(sb):
    sb.filesystem.make_directory("/data/deeper")
    thread = when_watching((1, (sb, "echo hi > /data/a; echo no > /data/deeper/x; mv /data/a /data/b; rm /data/b")))
    seen = collect(sb.filesystem.watch("/data", timeout=30), lambda e: e.type == Remove)
    thread.join()
    assert (Create, ["/data/a"]) in seen
    assert (Modify, ["/data/a"]) in seen
    assert (Modify, ["/data/a", "/data/b"]) in seen  # a rename is one Modify with both ends
    assert seen[-1] == (Remove, ["/data/b"])
    assert not any("/data/deeper/x" in paths for _, paths in seen)  # not recursive: children only


@pytest.mark.gvisor
@pytest.mark.rootless
def test_recursive_watch_follows_new_directories(sb):
    sb.filesystem.make_directory("/data/old")
    thread = when_watching(
        (1, (sb, "echo 1 > /data/old/f; mkdir /data/new")),
        (2, (sb, "echo 2 > /data/new/g")),  # a second inotify fd: the new directory is watched
    )
    seen = collect(sb.filesystem.watch("/data", recursive=True, timeout=30), lambda e: e.paths == ["/data/new/g"])
    thread.join()
    assert (Create, ["/data/old/f"]) in seen
    assert (Create, ["/data/new"]) in seen
    assert seen[-1][1] == ["/data/new/g"]


@pytest.mark.gvisor
def test_file_watch_and_filter(sb):
    sb.filesystem.write_text("a", "/tmp/f")
    thread = when_watching((1, (sb, "echo more >> /tmp/f; rm /tmp/f")))
    seen = collect(sb.filesystem.watch("/tmp/f", filter=[Remove], timeout=30), lambda e: True)
    thread.join()
    assert seen == [(Remove, ["/tmp/f"])]


@pytest.mark.gvisor
def test_old_api_watch_and_timeout_ends_quietly(sb):
    sb.mkdir("/w")
    thread = when_watching((1, (sb, "touch /w/x")))
    seen = collect(sb.watch("/w", filter=[Create], timeout=30), lambda e: True)
    thread.join()
    assert seen == [(Create, ["/w/x"])]
    assert list(sb.watch("/w", timeout=0.2)) == []  # nothing happens: the iterator just ends


@pytest.mark.gvisor
def test_watch_aio(sb):
    sb.filesystem.make_directory("/a")

    async def main():
        thread = when_watching((1, (sb, "touch /a/y")))
        async for event in sb.filesystem.watch.aio("/a", timeout=30):
            thread.join()
            return event.type, event.paths

    assert asyncio.run(main()) == (Create, ["/a/y"])


@pytest.mark.gvisor
def test_watch_errors(sb):
    with pytest.raises(SandboxFilesystemNotFoundError):
        list(sb.filesystem.watch("/missing", timeout=1))
    with pytest.raises(InvalidError, match="absolute"):
        list(sb.filesystem.watch("relative", timeout=1))
    with pytest.raises(InvalidError, match="FileWatchEventType"):
        list(sb.filesystem.watch("/tmp", filter=["Create"], timeout=1))
    with pytest.raises(InvalidError, match="timeout"):
        list(sb.filesystem.watch("/tmp", timeout=-1))
    assert _watch_fds() == 0  # nothing left open by the failed calls
    sb.terminate()
    sb.wait(raise_on_termination=False)
    with pytest.raises(NotFoundError, match="unavailable"):
        list(sb.filesystem.watch("/tmp", timeout=1))
