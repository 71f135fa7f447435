"""A tiny authoritative DNS server on the host's loopback, for the DNS filter's tests: it answers A
queries from a table the test changes, NXDOMAIN for other names, and remembers every name asked."""

import socket
import struct
import threading


class DNSServer:
    def __init__(self):
        self.records = {}  # name -> [(IPv4 address, ttl)]
        self.asked = []  # every question's name, in order
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = "%s:%d" % self.sock.getsockname()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                query, client = self.sock.recvfrom(4096)
            except OSError:
                return
            answer = self.answer(query)
            if answer is not None:
                self.sock.sendto(answer, client)

    def answer(self, query):
        labels, i = [], 12
        while i < len(query) and query[i]:
            labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace").lower())
            i += 1 + query[i]
        if i + 5 > len(query):
            return None
        name, qtype = ".".join(labels), struct.unpack("!H", query[i + 1:i + 3])[0]
        self.asked.append(name)
        question = query[12:i + 5]
        found = self.records.get(name)
        answers = [struct.pack("!HHHIH4s", 0xC00C, 1, 1, ttl, 4, socket.inet_aton(ip))
                   for ip, ttl in (found or ()) if qtype == 1]
        flags = 0x8180 if found is not None else 0x8183  # a response, recursion; NXDOMAIN when unknown
        header = struct.pack("!HHHHHH", struct.unpack("!H", query[:2])[0], flags, 1, len(answers), 0, 0)
        return header + question + b"".join(answers)

    def close(self):
        self.sock.close()
