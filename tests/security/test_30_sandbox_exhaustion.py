"""Issue 11, item 5 (the sandbox's side): a sandbox cannot make the host keep
more than its bounds, whatever it writes (pysandbox/bounds.py).

* The entrypoint's stdout and stderr reach the host through pipes the supervisor
  copies into files holding only the newest output (native/supervisor/output.c).
* Every memory-backed filesystem is sized (runtime/sizes.py): the host image's writable
  root (and /tmp in it), /dev/shm, and /dev, which is read-only once made.
"""

import os

import pytest

from ._inside import sh

pytestmark = pytest.mark.rootless

MiB = 1 << 20


def _kept_on_disk(path):
    return os.stat(path).st_blocks * 512


def test_a_flood_of_entrypoint_output_keeps_only_the_newest(sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_ENTRYPOINT_OUTPUT_MAX", str(1 * MiB))
    # 200 MiB to each stream, then a last line that must survive.
    flood = "head -c 209715200 /dev/zero | tr '\\0' x; echo; echo the-last-line"
    sb = sandboxes("sh", "-c", f"({flood}) & ({flood}) >&2; wait")
    sb.wait()
    from pysandbox._state import paths
    directory = paths.sandbox_dir(sb.object_id)
    for name in ("stdout", "stderr"):
        assert os.path.getsize(directory / name) > 200 * MiB  # offsets are kept: readers never jump
        assert _kept_on_disk(directory / name) <= 2 * MiB, f"{name} kept more than its bound"
    out = sb.stdout.read()
    assert out.endswith("the-last-line\n")
    assert len(out) <= 2 * MiB
    assert sb.stderr.read().endswith("the-last-line\n")


def test_a_reader_behind_the_bound_resumes_on_a_whole_character(sandboxes, monkeypatch):
    # Red-team F7: the kept output may start inside a multi-byte character; text readers skip
    # its remaining bytes instead of failing with UnicodeDecodeError.
    monkeypatch.setenv("PYSANDBOX_ENTRYPOINT_OUTPUT_MAX", str(1 * MiB))
    script = "import sys, time\nsys.stdout.write('\u20ac' * 1000 + '\\n'); sys.stdout.flush(); time.sleep(1)\n" \
             "sys.stdout.write('\u20ac' * 3000001); sys.stdout.flush()"
    sb = sandboxes("python3", "-c", script)
    lines = iter(sb.stdout)
    assert next(lines) == "\u20ac" * 1000 + "\n"
    sb.wait()  # the 9 MB behind it pass the bound while nobody reads
    rest = "".join(lines)
    assert 0 < len(rest) < 3000001 and set(rest) == {"\u20ac"}


def test_output_under_the_bound_is_kept_whole(sandboxes):
    sb = sandboxes("sh", "-c", "seq 1 100000; seq 1 1000 >&2")
    sb.wait()
    assert sb.stdout.read() == "".join(f"{i}\n" for i in range(1, 100001))
    assert sb.stderr.read() == "".join(f"{i}\n" for i in range(1, 1001))


STATFS = "stat -f -c '%T %b %S' {}"


def _size(sb, path):
    kind, blocks, block_size = sh(sb, STATFS.format(path))[1].split()
    return kind, int(blocks) * int(block_size)


def test_every_memory_filesystem_is_sized(sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_WRITABLE_ROOT_MAX", str(96 * MiB))
    monkeypatch.setenv("PYSANDBOX_DEV_SHM_MAX", str(16 * MiB))
    sb = sandboxes()
    assert _size(sb, "/") == ("tmpfs", 96 * MiB)  # the writable root, /tmp included
    assert _size(sb, "/tmp") == ("tmpfs", 96 * MiB)
    assert _size(sb, "/dev/shm") == ("tmpfs", 16 * MiB)
    assert sh(sb, "touch /dev/stored")[0] != 0  # /dev holds nodes, nothing else
    code, out = sh(sb, "head -c 33554432 /dev/zero > /dev/shm/fill")
    assert code != 0 and "No space left" in out
    code, out = sh(sb, "head -c 134217728 /dev/zero > /tmp/fill")
    assert code != 0 and "No space left" in out


def test_the_old_on_disk_root_is_still_there_when_asked_for(sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_WRITABLE_ROOT_MAX", "0")
    sb = sandboxes()
    assert _size(sb, "/")[0] != "tmpfs"
    assert _size(sb, "/tmp")[0] == "tmpfs"  # /tmp stays bounded
