"""Red team (red14): `sb.open(path).readline()` (and `readlines()`) on a file the sandbox wrote read it one byte
per system call: a long line holds the caller's thread, and with it every other call of its event loop (other
sandboxes' included), for minutes.

FileIO.readline bounds a line at Modal's 100 MiB (`_bounded`), but it called the raw file's own readline: io.FileIO
over the descriptor init passed has no peek, so IOBase.readline reads one byte per read(2). Sandbox code writes
one line of 100 MiB without a newline; the host's readline then makes 100 million system calls (a 20 MB line took
13.3 s here, against 0.03 s for read_bytes of the same file; 100 MiB over a minute, all that time inside one
synchronous step of the event loop, `_aio.synchronized`). readlines() is the same, line by line. Under gVisor the
relayed file peeks (filerelay.RelayFile.peek), so IOBase reads it in chunks there. Severity: low (time, not
bytes: bounded by 100 MiB per call, but against the promise that every host read of sandbox data is bounded in
time as well as size).

Fix: FileIO reads a line in chunks itself (8 KiB growing to 1 MiB) and seeks back to just past its newline, and
readlines reads the rest of the file in 1 MiB chunks and splits it; a raw file that peeks keeps its own
readline. The test counts this process's read system calls (/proc/self/io, syscr) around one readline of a 4 MiB
line: millions before, a handful now."""

import pytest

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

LINE = 4 << 20


def reads_so_far() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("syscr:"))


def test_readline_reads_a_long_line_in_chunks(sb):
    assert sb.exec("sh", "-c", f"head -c {LINE} /dev/zero | tr '\\0' a > /tmp/line; echo end >> /tmp/line").wait() == 0
    with sb.open("/tmp/line", "rb") as f:
        before = reads_so_far()
        line = f.readline()
        calls = reads_so_far() - before
        assert line == b"a" * LINE + b"end\n"
        assert f.readline() == b""
    assert calls < 10_000, f"{calls} read system calls for one line of {LINE} bytes"
    with sb.open("/tmp/line", "rb") as f:
        before = reads_so_far()
        lines = f.readlines()
        calls = reads_so_far() - before
    assert lines == [b"a" * LINE + b"end\n"]
    assert calls < 10_000, f"{calls} read system calls for readlines() of one line of {LINE} bytes"
