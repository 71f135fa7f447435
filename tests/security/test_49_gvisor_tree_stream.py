"""snapshot_directory under gVisor (image/treestream.py): init walks the directory and writes its tree into a
socket of the host's; the host stores the bytes, bounded in size and time, and sandbox-untree makes the layer
from them in a bwrap helper sandbox. Sandbox code controls the tree while it is walked and, as sandbox root,
can stop init's walker or make it say anything, so the stream is hostile:

* Symlinks (to /etc/shadow, `..` chains) come out as symlinks, a FIFO as a FIFO (the walk does not block on
  it), a device node and a volume mounted below not at all; a file growing during the walk and a directory renamed into a symlink to `/`
  meanwhile never make the walk read past the directory: the layer holds only names the sandbox made.
* The bounds hold: entries and bytes counted by the walk's reader, and the stream's bytes by the host.
* A forged stream (names with `/` or `..`, a link then a directory through it, sizes past a chunk, a truncated
  or endless one, nesting past 256) makes nothing outside the new layer's directory: sandbox-untree refuses
  it with a clear error, the host times out an endless one, and no layer is published.
"""

import contextlib
import os
import re
import socket
import struct
import subprocess
import threading

import pytest

import pysandbox as modal
from pysandbox import agent, settings
from pysandbox._aio import run_sync
from pysandbox._state import files
from pysandbox.exception import InvalidError, ResourceExhaustedError, TimeoutError
from pysandbox.image import store, treestream

from ._inside import sh

pytestmark = [pytest.mark.rootless, pytest.mark.needs_gvisor, pytest.mark.gvisor(only=True)]

DIR, END, FILE, DATA, LINK, FIFO, FAIL = 1, 2, 3, 4, 5, 6, 7
EPROTO, EEXIST, ELOOP = 71, 17, 40


def record(kind, name=b"", size=0, mode=0o755):
    return agent.TREE_RECORD.pack(kind, len(name), mode, 0, 0, 0, 0, 0, 0, 0, size) + name


def layer_paths(image):
    rootfs = store.layer_dir(image.object_id[3:]) / "rootfs"
    return rootfs, {str(path.relative_to(rootfs)) for path in rootfs.rglob("*")}


def test_links_fifos_devices_and_volumes_come_out_as_what_they_are(sandboxes):
    volume = modal.Volume.from_name("test-49", create_if_missing=True)
    sb = sandboxes("sleep", "120", block_network=True, volumes={"/h/vol": volume})
    code, out = sh(sb, "mkdir -p /h/sub && ln -s /etc/shadow /h/shadow && ln -s ../../../../../../etc /h/sub/up "
                       "&& ln -s sub/up/shadow /h/chain && mkfifo /h/fifo && (mknod /h/null c 1 3 || true) "
                       "&& echo mine > /h/sub/f && echo volume > /h/vol/x")
    assert code == 0, out
    rootfs, found = layer_paths(sb.snapshot_directory("/h"))
    # The device node is not content, and the volume another mount: gVisor reports no mount roots, the walk
    # tells them by their device.
    assert found == {"shadow", "sub", "sub/up", "chain", "fifo", "sub/f"}
    assert os.readlink(rootfs / "shadow") == "/etc/shadow" and os.readlink(rootfs / "chain") == "sub/up/shadow"
    assert (rootfs / "fifo").is_fifo() and (rootfs / "sub/f").read_text() == "mine\n"


def test_a_growing_file_and_a_directory_swapped_for_a_link_during_the_walk(sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_SNAPSHOT_DIRECTORY_MAX", str(8 << 20))
    sb = sandboxes("sleep", "120", block_network=True)
    code, out = sh(sb, "mkdir -p /g/d/inner && echo x > /g/d/inner/f && touch /g/grow && "
                       "(while :; do head -c 65536 /dev/zero >> /g/grow; [ $(stat -c %s /g/grow) -lt 6000000 ] || : > /g/grow; done) "
                       ">/dev/null 2>&1 & "
                       "(while :; do mv /g/d /g/e; ln -s / /g/d; rm /g/d; mv /g/e /g/d; done) >/dev/null 2>&1 & "
                       "echo started")
    assert code == 0, out
    allowed = {"grow", "d", "d/inner", "d/inner/f", "e", "e/inner", "e/inner/f"}
    left_out = []
    for _ in range(3):
        try:
            rootfs, found = layer_paths(sb.snapshot_directory("/g"))
        except ResourceExhaustedError as exc:  # the file outgrew the bound: the walk stopped there
            assert "PYSANDBOX_SNAPSHOT_DIRECTORY_MAX" in str(exc)
            continue
        except InvalidError as exc:
            # This runsc (20221219) at times answers statx and open of an entry with an error Linux would not
            # give (rootless: EINVAL for the file being appended): the walk stops there, naming the entry,
            # never leaving it out unsaid.
            assert re.search(r"failed at (grow|d|e|inner|f): ", str(exc)), exc
            continue
        assert found <= allowed, found - allowed  # never what `/` holds, through the swapped-in link
        assert not (rootfs / "d").is_symlink() or os.readlink(rootfs / "d") == "/"
        if not (rootfs / "grow").is_file():  # the file existed throughout the walk
            left_out.append(found)
            continue
        assert (rootfs / "grow").stat().st_size <= 8 << 20
    if left_out:
        # An open bug, not a pass: on a loaded host (the full CI, 4 of its last 7 runs; never alone, in about
        # 1,200 walks) the walk went into the renamed directory but its regular files, `grow` and `e/inner/f`,
        # were neither in the layer nor named by an error. Every assertion above held for every walk.
        pytest.xfail(f"open: a walk under gVisor left out the regular files silently: {left_out}")


def test_the_bounds_hold_and_leave_no_layer(sandboxes, monkeypatch):
    sb = sandboxes("sleep", "120", block_network=True)
    assert sh(sb, "mkdir /b && for i in $(seq 50); do echo $i > /b/$i; done && head -c 3000000 /dev/zero > /b/z")[0] == 0
    before = set(os.listdir(store.root() / "tmp"))
    monkeypatch.setenv("PYSANDBOX_SNAPSHOT_DIRECTORY_ENTRIES_MAX", "10")
    with pytest.raises(ResourceExhaustedError, match="PYSANDBOX_SNAPSHOT_DIRECTORY_ENTRIES_MAX"):
        sb.snapshot_directory("/b")
    monkeypatch.delenv("PYSANDBOX_SNAPSHOT_DIRECTORY_ENTRIES_MAX")
    monkeypatch.setenv("PYSANDBOX_SNAPSHOT_DIRECTORY_MAX", str(1 << 20))
    with pytest.raises(ResourceExhaustedError, match="PYSANDBOX_SNAPSHOT_DIRECTORY_MAX"):
        sb.snapshot_directory("/b")
    assert set(os.listdir(store.root() / "tmp")) == before  # the failed layers and their streams are gone


FORGED = {
    "dot-dot": (record(DIR, b"..") + record(END), EPROTO),
    "slash": (record(FILE, b"a/b") + record(DATA) + record(END), EPROTO),
    "absolute": (record(DIR, b"/etc") + record(END) + record(END), EPROTO),
    "empty name": (record(FIFO, b"") + record(END), EPROTO),
    "link then a directory through it": (record(LINK, b"esc", 4) + b"/etc" + record(DIR, b"esc") + record(END)
                                         + record(END), EEXIST),
    "link then a file through it": (record(LINK, b"esc", 11) + b"/etc/passwd" + record(FILE, b"esc"), EEXIST),
    "chunk past its size": (record(FILE, b"f") + record(DATA, size=1 << 20), EPROTO),
    "truncated": (record(FILE, b"f") + record(DATA, size=10) + b"abc", EPROTO),
    "after its end": (record(END) + b"more", EPROTO),
    "unknown kind": (record(99, b"x") + record(END), EPROTO),
    "target with a NUL": (record(LINK, b"l", 3) + b"a\0b" + record(END), EPROTO),
    "too deep": (record(DIR, b"d") * 300, ELOOP),
    "a name past NAME_MAX": (struct.pack("=8I2qQ", DIR, 300, 0, 0, 0, 0, 0, 0, 0, 0, 0) + b"x" * 300, EPROTO),
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_a_forged_stream_makes_nothing_outside_the_layer(tmp_path, case):
    stream, err = FORGED[case]
    (tmp_path / "stream").write_bytes(stream)
    (tmp_path / "dest").mkdir()
    result = subprocess.run([settings.native_binary("sandbox-untree"), "--from", str(tmp_path / "stream"),
                             "--dest", str(tmp_path / "dest"), "--max-bytes", "1000", "--max-entries", "1000"],
                            capture_output=True, text=True, env=settings.HOST_ENV, timeout=30)
    assert result.returncode == 1 and result.stdout.startswith(f"E {err} "), (result.stdout, result.stderr)
    assert sorted(os.listdir(tmp_path)) == ["dest", "stream"]


def test_the_reader_counts_the_bounds_itself_and_quotes_a_report_printably(tmp_path):
    many = b"".join(record(FIFO, b"f%d" % i) for i in range(20)) + record(END)
    big = record(FILE, b"f") + record(DATA, size=4096) + b"x" * 4096 + record(DATA) + record(END)
    lying = agent.TREE_RECORD.pack(FAIL, 8, 0, 0, 0, 0, 0, 0, 0, 0, 2) + b"a\nE 1 b\x1b"
    for name, stream, code, out in (("many", many, 3, "B entries"), ("big", big, 3, "B bytes"),
                                    ("lying", lying, 1, "E 2 a?E 1 b?")):
        (tmp_path / name).write_bytes(stream)
        (tmp_path / f"{name}.d").mkdir()
        result = subprocess.run([settings.native_binary("sandbox-untree"), "--from", str(tmp_path / name),
                                 "--dest", str(tmp_path / f"{name}.d"), "--max-bytes", "1000", "--max-entries", "10"],
                                capture_output=True, text=True, env=settings.HOST_ENV, timeout=30)
        assert (result.returncode, result.stdout.strip()) == (code, out), name


class _ForgingInit:
    """An init whose walker is sandbox root's: its socket carries whatever `serve` writes."""

    sandbox_id = "sb-forged"

    def __init__(self, serve):
        self.serve = serve

    async def tree(self, path):
        ours, theirs = socket.socketpair()
        threading.Thread(target=self.serve, args=(theirs,), daemon=True).start()
        return ours


def _through_the_host(serve, timeout=20):
    temp = store.new_temp("forged")
    try:
        run_sync(treestream.copy_directory(_ForgingInit(serve), "/x", temp, timeout))
        return sorted(os.listdir(temp / "rootfs"))
    finally:
        with contextlib.suppress(OSError):
            files.remove_tree(temp)


def test_a_forged_stream_through_the_host_is_refused_by_the_helper_sandbox():
    def escape(sock):
        with sock:
            sock.sendall(record(LINK, b"esc", 4) + b"/etc" + record(FILE, b"esc") + record(DATA, size=4) + b"pwn\n"
                         + record(DATA) + record(END))
    before = os.stat("/etc").st_mtime_ns
    with pytest.raises(InvalidError, match="snapshot_directory.*failed at esc: File exists"):
        _through_the_host(escape)
    assert os.stat("/etc").st_mtime_ns == before


def test_an_endless_or_oversized_stream_stops_at_the_hosts_bounds(monkeypatch):
    stop = threading.Event()

    def endless(sock):
        with sock:
            sock.sendall(record(FILE, b"f"))
            stop.wait(30)
    try:
        with pytest.raises(TimeoutError, match="did not finish"):
            _through_the_host(endless, timeout=2)
    finally:
        stop.set()
    monkeypatch.setenv("PYSANDBOX_SNAPSHOT_DIRECTORY_MAX", "1000")
    monkeypatch.setenv("PYSANDBOX_SNAPSHOT_DIRECTORY_ENTRIES_MAX", "1")

    def flood(sock):
        with sock, contextlib.suppress(OSError):
            sock.sendall(record(FILE, b"f") + record(DATA, size=1) * 200000)
    with pytest.raises(ResourceExhaustedError, match="PYSANDBOX_SNAPSHOT_DIRECTORY_MAX"):
        _through_the_host(flood)
