"""HTTP/1.1 messages for the agent's server: the bounds a client is held to, a request read
under them, and a response written out (RFC 9112)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    header_timeout: float = 5.0  # from the first byte (or the connect) to the last header
    response_timeout: float = 10.0  # handling plus writing the response
    idle_timeout: float = 30.0  # keep-alive between requests
    max_line: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 64
    max_body: int = 1024  # a GET has none; a small one is read and dropped, more is refused
    backlog: int = 1024  # the kernel caps this at net.core.somaxconn


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}


class Reject(Exception):
    """A request we answer with an error status, then close the connection."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def read_request(rfile, limits: Limits) -> Request | None:
    """The next request on the connection; None at a clean end; Reject when malformed."""
    line = rfile.readline(limits.max_line + 1)
    if not line:
        return None
    if len(line) > limits.max_line:
        raise Reject(414, "request line too long")
    if not line.endswith(b"\n"):
        return None  # cut off mid-line
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        # Two words is an HTTP/0.9 request: refused, as other exporters refuse it.
        raise Reject(400, "malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/"):
        raise Reject(400, "malformed request line")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise Reject(505, f"{version} is not supported; use HTTP/1.1")
    headers: dict[str, str] = {}
    total = count = 0
    while True:
        line = rfile.readline(limits.max_line + 1)
        total += len(line)
        if len(line) > limits.max_line or total > limits.max_header_bytes:
            raise Reject(431, "request headers too large")
        if not line.endswith(b"\n"):
            raise Reject(400, "request headers cut short")
        if line in (b"\r\n", b"\n"):
            break
        count += 1
        if count > limits.max_headers:
            raise Reject(431, "too many request headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise Reject(400, "malformed request header")
        key, value = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    request = Request(method, target, version, headers)
    if "transfer-encoding" in headers:
        raise Reject(501, "request bodies are not accepted")
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise Reject(400, "malformed Content-Length")
    if int(length) > limits.max_body:
        raise Reject(413, "request bodies are not accepted")
    if int(length) and len(rfile.read(int(length))) < int(length):
        return None
    return request


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float | None = None) -> str:
    """IMF-fixdate (RFC 9110 5.6.7), "Sun, 06 Nov 1994 08:49:37 GMT", whatever the locale."""
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def response_head(response: Response, *, server: str,
                  extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    """The status line and headers, up to the body."""
    lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
             f"Date: {http_date()}",
             f"Server: {server}",
             f"Content-Type: {response.content_type}",
             f"Content-Length: {len(response.body)}"]
    lines += [f"{name}: {value}" for name, value in (*response.headers, *extra)]
    if response.close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
