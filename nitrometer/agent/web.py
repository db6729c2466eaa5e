"""/metrics over HTTP, or HTTPS with basic auth from an exporter-toolkit web config file.

The TLS handshake happens in the connection's own thread, so a client that never finishes
it cannot hold up other scrapes (and nothing here ever touches the poll loop).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import logging
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from nitrometer import __version__
from nitrometer.agent.exporter import Exporter, wants_openmetrics
from nitrometer.errors import ConfigError

log = logging.getLogger("nitrometer.web")

HANDSHAKE_TIMEOUT = 5.0
MAX_SCRAPES = 4  # /metrics requests served at once; more get 503
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class WebConfig:
    cert_file: str | None = None
    key_file: str | None = None
    min_version: str = "TLS12"
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[self.min_version]
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"web.config.file: cannot load {self.cert_file} / "
                              f"{self.key_file}: {getattr(exc, 'strerror', None) or exc}") from None
        return ctx


def load_web_config(path: str | None) -> WebConfig:
    if path is None:
        return WebConfig()
    import yaml

    where = f"web.config.file {path}"
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = set(data) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    base = Path(path).resolve().parent
    tls = data.get("tls_server_config") or {}
    cert, key = tls.get("cert_file"), tls.get("key_file")
    if bool(cert) != bool(key):
        raise ConfigError(f"{where}: tls_server_config needs both cert_file and key_file")
    min_version = str(tls.get("min_version", "TLS12"))
    if min_version not in TLS_VERSIONS:
        raise ConfigError(f"{where}: min_version must be TLS12 or TLS13, got {min_version!r}")
    users = {}
    for user, hashed in (data.get("basic_auth_users") or {}).items():
        if not isinstance(hashed, str) or not hashed.startswith(BCRYPT_PREFIXES):
            raise ConfigError(f"{where}: basic_auth_users.{user} is not a bcrypt hash")
        users[str(user)] = hashed.encode()
    config = WebConfig(
        cert_file=str(base / cert) if cert else None,
        key_file=str(base / key) if key else None,
        min_version=min_version,
        users=users,
    )
    config.ssl_context()  # fail now, with one line, rather than on the first scrape
    return config


class Authenticator:
    """bcrypt is slow on purpose; remember the credentials that already passed."""

    def __init__(self, users: dict[str, bytes]):
        self.users = users
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = hashlib.sha256(user.encode() + b"\0" + password.encode() + b"\0" + hashed).digest()
        with self._lock:
            if any(hmac.compare_digest(key, k) for k in self._passed):
                return True
        import bcrypt

        ok = bcrypt.checkpw(password.encode(), hashed)
        if ok:
            with self._lock:
                self._passed.add(key)
        return ok


INDEX = """<!doctype html>
<html><head><title>nitrometer</title></head>
<body><h1>nitrometer {version}</h1>
<p>EC2 NVMe detailed performance statistics.</p>
<p><a href="/metrics">Metrics</a></p>
<p>{status}</p>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    server_version = f"nitrometer/{__version__}"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self.server.auth.check(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                       {"WWW-Authenticate": 'Basic realm="nitrometer"'})
            return
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/":
            body = INDEX.format(version=html.escape(__version__),
                                status=html.escape(self.server.status()))
            self._send(200, body.encode(), "text/html; charset=utf-8")
        else:
            self._send(404, b"Not found\n", "text/plain; charset=utf-8")

    def _metrics(self) -> None:
        # Past MAX_SCRAPES in flight, answer at once rather than queue: a flood of scrapes
        # must not take the CPU the poll loop needs.
        if not self.server.scrapes.acquire(blocking=False):
            self._send(503, b"Too many concurrent scrapes\n", "text/plain; charset=utf-8",
                       {"Retry-After": "1"})
            return
        try:
            exporter = self.server.exporter
            openmetrics = wants_openmetrics(self.headers.get("Accept"))
            compress = "gzip" in (self.headers.get("Accept-Encoding") or "")
            body = exporter.body(openmetrics=openmetrics, compress=compress)
        finally:
            self.server.scrapes.release()
        self._send(200, body, exporter.content_type(openmetrics),
                   {"Content-Encoding": "gzip"} if compress else None)

    def _send(self, code: int, body: bytes, content_type: str, headers=None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], exporter: Exporter, web_config: WebConfig,
                 status=lambda: "", max_scrapes: int = MAX_SCRAPES):
        import socket

        # "" means every interface: bind IPv6 with v4-mapped addresses when available.
        if address[0] == "" and socket.has_ipv6:
            self.address_family = socket.AF_INET6
            address = ("::", address[1])
        elif ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.exporter = exporter
        self.scrapes = threading.BoundedSemaphore(max_scrapes)
        self.status = status
        self.apply(web_config)
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        import socket

        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def apply(self, web_config: WebConfig) -> None:
        """New TLS material and users (SIGHUP); in-flight requests keep the old ones."""
        self.ssl_context = web_config.ssl_context()
        self.auth = Authenticator(web_config.users)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{'https' if self.ssl_context else 'http'}://{host}:{port}"

    def finish_request(self, request, client_address) -> None:
        ctx = self.ssl_context
        if ctx is not None:
            request.settimeout(HANDSHAKE_TIMEOUT)
            try:
                request = ctx.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
                request.close()
                return
        try:
            super().finish_request(request, client_address)
        finally:
            if ctx is not None:
                request.close()

    def handle_error(self, request, client_address) -> None:
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="nitrometer-web", daemon=True)
        thread.start()
        return thread
