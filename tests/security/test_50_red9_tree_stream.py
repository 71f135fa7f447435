"""Red team, session 9: snapshot_directory's stream under gVisor (image/treestream.py, sandbox-untree).

snapshot_directory(timeout=T) bounds the stream's arrival by T, but sandbox-untree then makes the layer
in a helper sandbox under BUILD_TIMEOUT (an hour), not what is left of T. A forged stream of one-byte
DATA records (65 bytes each in the stream, within treestream.stream_limit: ~270 million of them at the
default bounds) arrives in moments and keeps the helper parsing and writing one byte at a time long
after the caller's timeout; under bwrap and nsjail sandbox-mount --copy is killed at the timeout.
"""

import threading
import time

import pytest

from pysandbox.exception import TimeoutError
from pysandbox.image import store, treestream

from .test_49_gvisor_tree_stream import DATA, END, FILE, _through_the_host, record

pytestmark = [pytest.mark.rootless, pytest.mark.needs_gvisor, pytest.mark.gvisor(only=True)]

RECORDS = 6_000_000  # ~390 MB of stream: sandbox-untree takes about 4 s over it here, arriving well under one


def test_the_timeout_covers_making_the_layer_from_a_slow_to_parse_stream(monkeypatch):
    received = threading.Event()
    receive = treestream._receive

    async def receiving(sock, stream, limit, deadline, what):
        # However long the stream takes to arrive on a loaded machine, it all arrives: the timeout must
        # then still hold for making the layer from it (the time left, none if the arrival took it all).
        await receive(sock, stream, limit, time.monotonic() + 600, what)
        received.set()
    monkeypatch.setattr(treestream, "_receive", receiving)

    def one_byte_records(sock):
        block = (record(DATA, size=1) + b"x") * 10_000
        with sock:
            sock.sendall(record(FILE, b"f"))
            for _ in range(RECORDS // 10_000):
                sock.sendall(block)
            sock.sendall(record(DATA) + record(END))
    store.ensure_dirs()
    with pytest.raises(TimeoutError) as raised:
        _through_the_host(one_byte_records, timeout=2)
    # The attack was made: the whole stream arrived, and making the layer from it was held to the timeout.
    assert received.is_set() and "snapshot_directory" in str(raised.value)
