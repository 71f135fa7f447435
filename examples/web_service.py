"""A web service in a sandbox, reached from the host through a tunnel.

    python examples/web_service.py

The sandbox runs a small HTTP server on port 8080, exposed with `unencrypted_ports=[8080]`; a readiness
probe says when it listens, and `sb.tunnels()` says where to reach it. Locally a tunnel is a TCP port on
127.0.0.1 (`tunnel.url` is http://127.0.0.1:PORT); on Modal it is a public HTTPS address. Written for
Modal's API: with `import modal` instead of the first import it runs on Modal unchanged.
"""

import json
import urllib.request

import pysandbox as modal

PORT = 8080

SERVER = f"""
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"path": self.path, "served_by": os.uname().nodename}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("0.0.0.0", {PORT}), Handler).serve_forever()
"""


def main():
    app = modal.App.lookup("web-service", create_if_missing=True)
    sb = modal.Sandbox.create(
        "python", "-c", SERVER,  # the entrypoint: the sandbox lives as long as the server
        app=app,
        unencrypted_ports=[PORT],
        readiness_probe=modal.Probe.with_tcp(PORT),
        timeout=120,
    )
    try:
        sb.wait_until_ready(timeout=60)
        tunnel = sb.tunnels()[PORT]
        print("tunnel:", tunnel.url)
        for path in ("/", "/hello"):
            with urllib.request.urlopen(tunnel.url + path, timeout=10) as response:
                reply = json.loads(response.read())
            print(response.status, reply["path"])
    finally:
        sb.terminate()


if __name__ == "__main__":
    main()
