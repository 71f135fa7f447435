"""Network test helpers: the host's own address, host sockets that count the connections
they accepted, and what a TCP connection from inside a sandbox gets."""

import os
import socket
import threading


def host_address():
    """The host's own address (the source of its default route), which sandboxes reach through
    slirp4netns where the tests let them (tests/conftest.py). A UDP connect sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("198.51.100.7", 9))  # TEST-NET-2
        return s.getsockname()[0]


class Listener:
    """A listening host socket (TCP or Unix) that accepts and counts connections."""

    def __init__(self, family, address):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(16)
        self.address = self.sock.getsockname()
        self.port = self.address[1] if isinstance(self.address, tuple) else None
        self.accepted = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._changed:
                self.accepted += 1
                self._changed.notify_all()
            conn.close()

    def wait_for(self, count, timeout=10):
        """How many connections were accepted, once that reaches `count` (or after `timeout`
        seconds): a connection its client saw complete may still wait in the backlog for
        this listener's thread."""
        with self._changed:
            self._changed.wait_for(lambda: self.accepted >= count, timeout)
            return self.accepted

    def close(self):
        self.sock.close()
        if isinstance(self.address, str) and self.address.startswith("/"):
            os.unlink(self.address)


CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


def connect_from(sb, host, port):
    """What a TCP connection from inside the sandbox to host:port gives: 'connected' or the error's name."""
    p = sb.exec("python3", "-c", CONNECT, host, str(port))
    assert p.wait() == 0, p.stderr.read()
    return p.stdout.read().strip()


def refused(runner):
    """What connecting to a destination the egress filter refuses gives (CONNECT's name for it): under gVisor
    the filter sits on the link, where it can only drop (docs/RUNNERS.md), so the connection times out."""
    return "TimeoutError" if runner == "gvisor" else "ConnectionRefusedError"
