"""A fake EC2 instance metadata service (IMDSv2) on 127.0.0.1, for tests and benchmarks.

As the EC2 User Guide ("Use IMDSv2") describes it: PUT /latest/api/token with the
X-aws-ec2-metadata-token-ttl-seconds header answers a token; GETs carrying it in
X-aws-ec2-metadata-token answer, among others, /latest/dynamic/instance-identity/document.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_PATH = "/latest/api/token"
DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"


class FakeImds:
    """mode: ok | reject (401 on every GET) | hang (the token PUT answers 3 s late) |
    forbidden (403 on the token PUT: IMDS turned off for the instance) | notjson.
    `seen` records (method, path, headers) of every request."""

    def __init__(self, document: dict, token: str = "AQAEAtokenvalue==", mode: str = "ok"):
        self.document, self.token, self.mode = document, token, mode
        self.seen: list[tuple[str, str, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                fake.seen.append(("PUT", self.path, dict(self.headers)))
                if fake.mode == "hang":
                    time.sleep(3)
                if fake.mode == "forbidden":
                    return self.answer(403)
                if self.path != TOKEN_PATH or \
                        "X-aws-ec2-metadata-token-ttl-seconds" not in self.headers:
                    return self.answer(400)
                self.answer(200, fake.token.encode())

            def do_GET(self):
                fake.seen.append(("GET", self.path, dict(self.headers)))
                if fake.mode == "reject" or \
                        self.headers.get("X-aws-ec2-metadata-token") != fake.token:
                    return self.answer(401)
                if self.path != DOCUMENT_PATH:
                    return self.answer(404)
                if fake.mode == "notjson":
                    return self.answer(200, b"<html>captive portal</html>")
                self.answer(200, json.dumps(fake.document).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
