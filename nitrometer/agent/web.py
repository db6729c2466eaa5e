"""/metrics over HTTP, or HTTPS with basic auth and client certificates from an
exporter-toolkit web config file. The bounds on what a client may spend are in httpserver.

The TLS handshake happens in the connection's own thread, under the header deadline, so a
client that never finishes it cannot hold up other scrapes (nor the poll loop).
"""

from __future__ import annotations

import logging
import threading

from nitrometer import __version__
from nitrometer.agent.exporter import Exporter, wants_openmetrics
from nitrometer.agent.http11 import Limits, Request, Response
from nitrometer.agent.httpserver import BoundedHTTPServer
from nitrometer.agent.webauth import AuthBusy, Authenticator
from nitrometer.agent.webconfig import WebConfig, load_web_config

__all__ = ["MetricsServer", "WebConfig", "load_web_config", "accepts_gzip"]

log = logging.getLogger("nitrometer.web")

MAX_SCRAPES = 4  # /metrics requests rendered at once; more get 503
TEXT = "text/plain; charset=utf-8"

INDEX = """<!doctype html>
<html><head><title>nitrometer</title></head>
<body><h1>nitrometer {version}</h1>
<p>EC2 NVMe detailed performance statistics.</p>
<p><a href="{path}">Metrics</a></p>
<p>{status}</p>
</body></html>
"""


def accepts_gzip(header: str | None) -> bool:
    """Accept-Encoding allows gzip: named with q > 0, or not named and * with q > 0."""
    named = star = None
    for item in (header or "").split(","):
        coding, *params = item.split(";")
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            named = q if named is None else max(named, q)
        elif coding == "*":
            star = q
    if named is not None:
        return named > 0
    return star is not None and star > 0



_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                          "'": "&#x27;"})


def escape(text: str) -> str:
    """html.escape, without loading html (its entity table is 0.3 MiB)."""
    return text.translate(_ESCAPES)

class MetricsServer(BoundedHTTPServer):
    server_name = f"nitrometer/{__version__}"

    def __init__(self, address: tuple[str, int], exporter: Exporter, web_config: WebConfig,
                 status=lambda: "", max_scrapes: int = MAX_SCRAPES,
                 limits: Limits | None = None, path: str = "/metrics"):
        self.exporter = exporter
        self.path = path  # --web.telemetry-path
        self.scrapes = threading.BoundedSemaphore(max_scrapes)
        self.status = status
        self.apply(web_config)
        super().__init__(address, self.handle, limits)

    def apply(self, web_config: WebConfig) -> None:
        """New TLS material, users and headers (SIGHUP): in-flight requests keep the old."""
        ssl_context = web_config.ssl_context()
        auth = Authenticator(web_config.users)
        # One assignment: a connection sees the old settings or the new, never a mix.
        self._settings = (web_config, ssl_context, auth)
        self.response_headers = web_config.headers

    def shutdown(self) -> None:
        self.auth.close()
        super().shutdown()

    def tls(self):
        return self._settings[1]

    def peer_ok(self, cert: dict | None) -> bool:
        return self._settings[0].allows_peer(cert)

    @property
    def ssl_context(self):
        return self._settings[1]

    @property
    def auth(self) -> Authenticator:
        return self._settings[2]

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.ssl_context else 'http'}://{host}:{port}"

    def handle(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"Method not allowed\n", headers=[("Allow", "GET, HEAD")])
        try:
            allowed = self.auth.check(request.header("Authorization"))
        except AuthBusy:
            return Response(503, b"Too many password checks at once\n",
                             headers=[("Retry-After", "1")])
        if not allowed:
            return Response(401, b"Unauthorized\n",
                            headers=[("WWW-Authenticate", 'Basic realm="nitrometer"')])
        if request.path == self.path:
            return self._metrics(request)
        if request.path == "/":
            body = INDEX.format(version=escape(__version__), path=escape(self.path),
                                status=escape(self.status()))
            return Response(200, body.encode(), "text/html; charset=utf-8")
        return Response(404, b"Not found\n")

    def _metrics(self, request: Request) -> Response:
        # Past max_scrapes in flight, answer at once rather than queue: a flood of scrapes
        # must not take the CPU the poll loop needs.
        if not self.scrapes.acquire(blocking=False):
            return Response(503, b"Too many concurrent scrapes\n",
                            headers=[("Retry-After", "1")])
        try:
            openmetrics = wants_openmetrics(request.header("Accept"))
            compress = accepts_gzip(request.header("Accept-Encoding"))
            body = self.exporter.body(openmetrics=openmetrics, compress=compress)
        finally:
            self.scrapes.release()
        headers = [("Vary", "Accept-Encoding")]
        if compress:
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, body, self.exporter.content_type(openmetrics), headers)
