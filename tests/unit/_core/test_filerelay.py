"""_core/filerelay.py: RelayFile over a fake init that serves FILE requests on an in-memory file as
native/init/init_fs.c's handle_file does (one chunk each). It behaves as io.BytesIO over the same bytes
does; a silent init is a TimeoutError naming its bound, a vanished one an OSError (the real relay runs in
tests/sandbox/test_file_io.py and test_filesystem.py under the gvisor runner)."""

import errno
import io
import socket
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysandbox import agent
from pysandbox._core.filerelay import RelayFile


class FakeInit:
    """A thread answering FILE requests on one end of a socketpair from `data` (a bytearray)."""

    def __init__(self, data: bytes, answer: bool = True) -> None:
        self.data, self.offset, self.answer = bytearray(data), 0, answer
        self.host, self.init = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            request = self.init.recv(agent.MAX_MESSAGE)
            if not request:
                return
            if not self.answer:
                continue
            op, whence, arg = agent.FILE.unpack_from(request, agent.HEADER.size)
            payload = request[agent.HEADER.size + agent.FILE.size:]
            self.init.send(self._answer(op, whence, arg, payload))

    def _answer(self, op, whence, arg, payload) -> bytes:
        if op in (agent.FILE_READ, agent.FILE_PEEK):
            assert 0 <= arg <= agent.FILE_CHUNK
            out = bytes(self.data[self.offset:self.offset + arg])
            self.offset += len(out) if op == agent.FILE_READ else 0
            return agent.message(agent.REP_OK, out)
        if op == agent.FILE_WRITE:
            assert len(payload) <= agent.FILE_CHUNK
            self.data.extend(bytes(max(0, self.offset - len(self.data))))  # a hole, as past a file's end
            self.data[self.offset:self.offset + len(payload)] = payload
            self.offset += len(payload)
            return agent.message(agent.REP_OK, agent.COUNT.pack(len(payload)))
        base = {0: 0, 1: self.offset, 2: len(self.data)}[whence]
        if base + arg < 0:
            return agent.message(agent.REP_ERROR, struct.pack("=i", errno.EINVAL) + b"file\0")
        self.offset = base + arg
        return agent.message(agent.REP_OK, agent.COUNT.pack(self.offset))

    def close(self) -> None:
        self.init.shutdown(socket.SHUT_RDWR)  # its recv returns b"": the thread ends
        self.thread.join(5)
        self.init.close()


def _ops():
    return st.lists(st.one_of(
        st.tuples(st.just("read"), st.integers(-1, 3 * agent.FILE_CHUNK)),
        st.tuples(st.just("readline"), st.just(None)),
        st.tuples(st.just("write"), st.binary(max_size=200).map(lambda b: b * 700)),
        st.tuples(st.just("seek"), st.tuples(st.integers(-100, 200_000), st.sampled_from([0, 1, 2]))),
    ), max_size=12)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=4000).map(lambda b: b.replace(b"\r", b"\n") * 40), ops=_ops())
def test_it_behaves_as_a_file_over_the_same_bytes(data, ops):
    init = FakeInit(data)
    relay, model = RelayFile(init.host, True, True), io.BytesIO(data)
    try:
        for op, arg in ops:
            if op == "seek":
                offset, whence = arg
                if (model.tell() if whence == 1 else len(model.getvalue()) if whence == 2 else 0) + offset < 0:
                    with pytest.raises(OSError) as refused:
                        relay.seek(offset, whence)
                    assert refused.value.errno == errno.EINVAL
                    continue
                assert relay.seek(offset, whence) == model.seek(offset, whence)
            elif op == "write":
                view = memoryview(arg)
                while view:  # a raw write may be short: FileIO's and filesystem's loops
                    view = view[relay.write(view):]
                model.write(arg)
            else:
                assert getattr(relay, op)(*([] if arg is None else [arg])) == getattr(model, op)(
                    *([] if arg is None else [arg]))
        assert relay.tell() == model.tell()
        assert bytes(init.data) == model.getvalue()
    finally:
        relay.close()
        init.close()


def test_a_silent_init_is_a_timeout_naming_its_bound(monkeypatch):
    monkeypatch.setenv("PYSANDBOX_FILE_RELAY_TIMEOUT", "1")
    init = FakeInit(b"x", answer=False)
    with RelayFile(init.host, True, False) as relay, pytest.raises(TimeoutError, match="PYSANDBOX_FILE_RELAY_TIMEOUT"):
        relay.read(1)
    init.close()


def test_a_vanished_init_is_an_oserror_and_modes_hold():
    init = FakeInit(b"x")
    relay = RelayFile(init.host, True, False)
    with pytest.raises(io.UnsupportedOperation, match="not writeable"):
        relay.write(b"y")
    init.close()
    with pytest.raises(OSError, match="the sandbox ended"):
        relay.read(1)
    relay.close()
    with pytest.raises(ValueError, match="closed file"):
        relay.read(1)
    writer = RelayFile(socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)[0], False, True)
    with pytest.raises(io.UnsupportedOperation, match="not readable"):
        writer.read(1)
    with pytest.raises(io.UnsupportedOperation):
        writer.fileno()  # no descriptor: sb.filesystem copies through read and write
    writer.close()
