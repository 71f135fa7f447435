"""StreamReader/StreamWriter logic over real pipes and files, with generated inputs."""

import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysandbox import _aio
from pysandbox.exception import InvalidError
from pysandbox.streams import FollowSource, OutputPipes, Source, StreamReader, StreamType, StreamWriter

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
