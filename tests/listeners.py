"""Host sockets for network tests: each counts the connections it accepted."""

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
