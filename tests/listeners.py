"""Network test helpers: the host's own address, host sockets that count the connections
they accepted, and what a TCP connection from inside a sandbox gets."""

import contextlib
import json
import os
import socket
import threading


def host_address():
    """The host's own address (the source of its default route), which sandboxes reach through
    slirp4netns where the tests let them (tests/conftest.py). A UDP connect sends nothing. Its
    destination is in no range a test gives the host (the security tests beside this one add
    198.51.100.7 and others of TEST-NET-2 to its loopback, which then became the answer)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("9.9.9.9", 9))
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
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

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
        stop_serving(self.sock, self._thread)
        if isinstance(self.address, str) and self.address.startswith("/"):
            os.unlink(self.address)


def stop_serving(sock, thread):
    """Ends `thread`'s accept loop on the listening `sock`, then closes it. The thread is woken first: close(2)
    does not end an accept(2) blocked in another thread, which would wait on for ever, and a signal that
    interrupts it (a SIGCHLD, handed to it while the main thread blocks every signal in posix_spawn) restarts it
    on the same fd number, by then another socket's: a later sandbox's agent.sock listener (launch._spawn), whose
    first exec it took and closed."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # accept(2) fails at once (EINVAL): the loop ends
    thread.join(timeout=5)
    sock.close()


# TCP connections from inside a sandbox, all at once: a refusal under gVisor is a connection that times out
# (see refused()), and one after the other they would wait out their timeouts one after the other too.
CONNECT = """
import json, socket, sys, threading
destinations = json.loads(sys.argv[1])
results = [None] * len(destinations)

def attempt(i, host, port):
    try:
        socket.create_connection((host, port), timeout=5).close()
        results[i] = "connected"
    except OSError as exc:
        results[i] = type(exc).__name__

threads = [threading.Thread(target=attempt, args=(i, *d)) for i, d in enumerate(destinations)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(results))
"""


def connect_from(sb, host, port):
    """What a TCP connection from inside the sandbox to host:port gives: 'connected' or the error's name."""
    return connect_all_from(sb, [(host, port)])[0]


def connect_all_from(sb, destinations):
    """connect_from for each (host, port) of `destinations`, tried at the same time."""
    p = sb.exec("python3", "-c", CONNECT, json.dumps(destinations))
    assert p.wait() == 0, p.stderr.read()
    return json.loads(p.stdout.read())


def refused(runner):
    """What connecting to a destination the egress filter refuses gives (CONNECT's name for it): under gVisor
    the filter sits on the link, where it can only drop (docs/RUNNERS.md), so the connection times out."""
    return "TimeoutError" if runner == "gvisor" else "ConnectionRefusedError"
