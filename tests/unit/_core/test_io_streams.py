"""StreamReader/StreamWriter logic over real pipes and files, with generated inputs."""

import fcntl
import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysandbox import _aio
from pysandbox.exception import InvalidError, ResourceExhaustedError
from pysandbox.io_streams import CHUNK, FollowSource, OutputPipes, Source, StreamReader, StreamType, StreamWriter

KEEP = 64 << 20


class ChunkSource(Source):
    """Hands out prepared chunks, as a pipe would."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    async def read(self):
        return self.chunks.pop(0) if self.chunks else b""

    def close(self):
        self.chunks = []


def split(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:]) if b > a]


@settings(max_examples=200)
@given(st.text(), st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_text_survives_any_chunking(text, cuts):
    data = text.encode()
    reader = StreamReader(ChunkSource(split(data, cuts)), 1)
    assert reader.read() == text
    assert reader.read() == ""


@settings(max_examples=200)
@given(st.text(alphabet="ab\né"), st.lists(st.integers(min_value=0, max_value=1000), max_size=8))
def test_lines_survive_any_chunking(text, cuts):
    reader = StreamReader(ChunkSource(split(text.encode(), cuts)), 1, by_line=True)
    lines = list(reader)
    assert "".join(lines) == text
    assert all(line.endswith("\n") for line in lines[:-1])
    assert all(line.count("\n") <= 1 for line in lines)


def test_bytes_mode_and_shared_position():
    reader = StreamReader(ChunkSource([b"ab", b"cd"]), 1, text=False)
    assert next(iter(reader)) == b"ab"
    assert reader.read() == b"cd"
    assert reader.read() == b""


def test_invalid_utf8_is_an_error():
    with pytest.raises(UnicodeDecodeError):
        StreamReader(ChunkSource([b"\xff"]), 1).read()
    with pytest.raises(UnicodeDecodeError):
        StreamReader(ChunkSource([b"\xc3"]), 1).read()  # truncated at EOF


def test_stream_type_rules():
    with pytest.raises(ValueError):
        StreamReader(None, 1, stream_type=StreamType.DEVNULL).read()
    with pytest.raises(InvalidError):
        list(StreamReader(None, 1, stream_type=StreamType.STDOUT))
    with pytest.raises(ValueError):
        StreamReader(None, 1, text=False, by_line=True)
    assert StreamType.PIPE.value == -1 and StreamType.STDOUT.value == -2 and StreamType.DEVNULL.value == -3


def test_linked_pipes_never_deadlock():
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.set_blocking(err_w, False)
    written = 0
    try:
        while True:
            written += os.write(err_w, b"e" * 65536)
    except BlockingIOError:
        pass
    os.write(out_w, b"out")
    pipes = OutputPipes((out_r, err_r), KEEP)
    out, err = pipes.source(0), pipes.source(1)
    os.close(out_w)
    reader = StreamReader(out, 1, text=False)
    assert reader.read() == b"out"
    os.close(err_w)
    assert len(StreamReader(err, 2, text=False).read()) == written


def test_concurrent_readers_of_linked_pipes_see_every_chunk_live():
    # One thread per pipe, as `pysandbox exec` reads a process's stdout and stderr: a
    # chunk on stdout must reach the stdout reader while stderr stays silent (once it
    # was moved into a backlog its reader, already waiting on the empty pipe, never saw).
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pipes = OutputPipes((out_r, err_r), KEEP)
    out, err = pipes.source(0), pipes.source(1)
    stderr_reader = threading.Thread(target=_aio.run_sync, args=(err.read(),), daemon=True)
    stderr_reader.start()
    try:
        for i in range(300):
            got = []
            stdout_reader = threading.Thread(target=lambda: got.append(_aio.run_sync(out.read())), daemon=True)
            stdout_reader.start()
            os.write(out_w, b"%d" % i)
            stdout_reader.join(30)
            assert got == [b"%d" % i], f"chunk {i} never reached its reader"
    finally:
        os.close(err_w)
        stderr_reader.join(30)
        os.close(out_w)


def test_follow_source_reads_until_finished(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"first\n")
    state = {"done": False}
    source = FollowSource(path, lambda: state["done"])
    reader = StreamReader(source, 1, by_line=True)
    it = iter(reader)
    assert next(it) == "first\n"
    with open(path, "ab") as f:
        f.write(b"second\n")
    state["done"] = True
    assert list(it) == ["second\n"]


def test_writer_rules():
    r, w = os.pipe()
    writer = StreamWriter(w)
    writer.write(b"a")
    writer.write(bytearray(b"b"))
    writer.write(memoryview(b"c"))
    writer.write("d")
    with pytest.raises(TypeError):
        writer.write(1)
    writer.write_eof()
    with pytest.raises(ValueError):
        writer.write("x")
    writer.drain()
    assert os.read(r, 10) == b"abcd"
    assert os.read(r, 10) == b""  # EOF was sent
    os.close(r)


def test_writer_buffer_limit():
    r, w = os.pipe()
    writer = StreamWriter(w)
    writer.write(b"x" * (16 << 20))
    with pytest.raises(BufferError):
        writer.write(b"y")
    writer.release()
    os.close(r)


@settings(max_examples=100)
@given(st.binary(max_size=5000), st.lists(st.integers(min_value=0, max_value=5000), max_size=8), st.booleans())
def test_read_and_iteration_agree(data, cuts, by_line):
    text = data.decode("latin-1")  # any code points, multi-byte in UTF-8
    encoded = text.encode()
    whole = StreamReader(ChunkSource(split(encoded, cuts)), 1, by_line=by_line).read()
    items = list(StreamReader(ChunkSource(split(encoded, cuts)), 1, by_line=by_line))
    assert whole == "".join(items) == text
    assert StreamReader(ChunkSource(split(data, cuts)), 1, text=False).read() == data


def test_a_long_line_over_many_chunks():
    chunks = [b"x" * 1000] * 500 + [b"\nend"]
    assert list(StreamReader(ChunkSource(chunks), 1, by_line=True)) == ["x" * 500_000 + "\n", "end"]


def filled_pipe(data):
    """A pipe holding `data` (at most its capacity), closed for writing."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def test_unclaimed_output_is_kept_up_to_the_bound_then_cut():
    r, w = os.pipe()
    os.set_blocking(w, False)
    pipes = OutputPipes((r, None), 100_000)
    sent = bytearray()
    for i in range(10):  # the pipe fills up; each drain makes room, keeping at most the bound
        try:
            while True:
                chunk = bytes([i]) * 10000
                sent += chunk[:os.write(w, chunk)]
        except BlockingIOError:
            pass
        pipes.drain_unclaimed()
    os.close(w)
    pipes.drain_unclaimed()
    reader = StreamReader(pipes.source(0), 1, text=False)
    with pytest.raises(ResourceExhaustedError, match="PYSANDBOX_EXEC_UNREAD_OUTPUT_MAX") as cut:
        reader.read()
    assert cut.value.partial == sent[:100_000]
    assert f"({len(sent) - 100_000} bytes so far)" in str(cut.value)
    assert reader.read() == b""


def test_a_cut_inside_a_character_is_not_an_encoding_error():
    pipes = OutputPipes((filled_pipe("é".encode() * 10),), 5)  # the cut splits the third é
    pipes.drain_unclaimed()
    with pytest.raises(ResourceExhaustedError) as cut:
        StreamReader(pipes.source(0), 1).read()
    assert cut.value.partial == "éé"


def test_a_claimed_pipe_is_left_to_its_reader():
    pipes = OutputPipes((filled_pipe(b"live"), filled_pipe(b"idle")), KEEP)
    iterator = iter(StreamReader(pipes.source(0), 1, text=False))
    assert next(iterator) == b"live"
    fds, recheck = pipes.drain_unclaimed()
    assert fds == [] and recheck  # stdout is the iterator's (still alive); stderr was drained to EOF
    del iterator
    assert pipes.drain_unclaimed() == ([], False)


def test_dropping_the_last_holder_closes_the_pipes(no_cyclic_gc):
    before = set(os.listdir("/proc/self/fd"))
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pipes = OutputPipes((r1, r2), KEEP)
    out = StreamReader(pipes.source(0), 1)
    err = StreamReader(pipes.source(1), 2)
    del pipes, err
    os.fstat(r2)  # stdout's reader keeps both open: a process writing to stderr is drained, not killed
    del out
    for fd in (r1, r2):
        with pytest.raises(OSError):
            os.fstat(fd)
    os.close(w1)
    os.close(w2)
    assert set(os.listdir("/proc/self/fd")) == before


def in_forked_child(check):
    """Run `check` in a forked child; its exit status (0: passed)."""
    pid = os.fork()
    if pid == 0:
        try:
            check()
        except BaseException:
            os._exit(1)
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_forked_child_closes_its_copies_and_refuses_to_use_them():
    out_r = filled_pipe(b"parent's")
    reader = StreamReader(OutputPipes((out_r,), KEEP).source(0), 1, text=False)
    stdin_r, stdin_w = os.pipe()
    writer = StreamWriter(stdin_w)

    def child():
        for fd in (stdin_w, out_r):
            with pytest.raises(OSError):
                os.fstat(fd)
        with pytest.raises(InvalidError, match="fork"):
            reader.read()
        with pytest.raises(InvalidError, match="fork"):
            writer.write(b"x")

    assert in_forked_child(child) == 0
    assert reader.read() == b"parent's"
    writer.write(b"still mine")
    writer.write_eof()
    writer.drain()
    assert os.read(stdin_r, 100) == b"still mine"
    os.close(stdin_r)


def test_a_forked_child_fetches_its_own_sandbox_stdin():
    r, w = os.pipe()

    async def fetch():
        return os.dup(w)

    writer = StreamWriter(open_fd=fetch)
    writer.write(b"a")
    writer.drain()

    def child():
        writer.write(b"b")
        writer.drain()

    assert in_forked_child(child) == 0
    writer.write(b"c")
    writer.drain()
    assert sorted(os.read(r, 10)) == sorted(b"abc")
    writer.release()
    os.close(w)
    os.close(r)


def test_follow_source_has_its_own_position_across_fork(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"one\ntwo\n")
    reader = StreamReader(FollowSource(path, lambda: True), 1, by_line=True)
    assert next(iter(reader)) == "one\n"
    assert in_forked_child(lambda: reader.read()) == 0
    assert reader.read() == "two\n"


def test_stdout_grows_to_a_chunk_once_a_read_finds_it_full_and_stderr_stays():
    """A pipe starts at the default size (the resize costs ~1% of an exec("true")); stdout's grows
    to CHUNK at the first read of a full pipe, so a process writing much blocks less often."""
    (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
    pipes = OutputPipes((out_r, err_r), KEEP)
    source, errors = pipes.source(0), pipes.source(1)
    default = fcntl.fcntl(out_r, fcntl.F_GETPIPE_SZ)
    os.write(out_w, b"x" * 100)
    assert _aio.run_sync(source.read()) == b"x" * 100
    assert fcntl.fcntl(out_r, fcntl.F_GETPIPE_SZ) == default  # a short read: no resize
    for w, reader in ((out_w, source), (err_w, errors)):
        os.write(w, b"y" * default)
        assert _aio.run_sync(reader.read()) == b"y" * default
    assert fcntl.fcntl(out_r, fcntl.F_GETPIPE_SZ) == CHUNK
    assert fcntl.fcntl(err_r, fcntl.F_GETPIPE_SZ) == default
    os.close(out_w)
    os.close(err_w)
