"""Network test helpers: host sockets that count the connections they accepted, and
what a TCP connection from inside a sandbox gets."""

import os
import socket
import threading


class Listener:
    """A listening host socket (TCP or Unix) that accepts and counts connections."""

    def __init__(self, family, address):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(16)
        self.address = self.sock.getsockname()
        self.port = self.address[1] if isinstance(self.address, tuple) else None
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

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
