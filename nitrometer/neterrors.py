"""What went wrong with an HTTP request, in words a user reads on one line (never the name of
the exception class that carried it)."""

from __future__ import annotations

import errno
import re
import socket
import sys

# Substrings of urllib3's messages -> what they mean; the first found wins.
_MESSAGES = (
    ("Name or service not known", "the host name does not resolve"),
    ("nodename nor servname", "the host name does not resolve"),
    ("Temporary failure in name resolution", "the host name does not resolve"),
    ("No address associated with hostname", "the host name does not resolve"),
    ("Connection refused", "connection refused (nothing listens there)"),
    ("Network is unreachable", "the network is unreachable"),
    ("No route to host", "no route to the host"),
    ("Connection reset", "the connection was reset"),
    ("RemoteDisconnected", "the server closed the connection without answering"),
    ("certificate verify failed", "the server's TLS certificate is not trusted"),
)


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError at the root of a chain of wrapped exceptions, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        inner = next((a for a in getattr(exc, "args", ()) if isinstance(a, BaseException)),
                     None)
        exc = getattr(exc, "reason", None) or inner or exc.__cause__ or exc.__context__
    return None


def describe(exc: BaseException) -> str:
    """One phrase for a failed request: "connection refused", "timed out after ...", ..."""
    # An exception of theirs comes only from a library already loaded: never load one here.
    requests = sys.modules.get("requests")
    if requests is not None:
        rex = requests.exceptions
        if isinstance(exc, (rex.MissingSchema, rex.InvalidSchema, rex.InvalidURL)):
            return "not a URL (expected http://HOST:PORT or https://...)"
        if isinstance(exc, rex.Timeout):
            return "no answer in time (timed out)"
        if isinstance(exc, rex.SSLError):
            return "the TLS handshake failed"
        if isinstance(exc, rex.TooManyRedirects):
            return "too many redirects"
        if isinstance(exc, rex.HTTPError) and exc.response is not None:
            return f"HTTP {exc.response.status_code} {exc.response.reason or ''}".strip()
    urllib3 = sys.modules.get("urllib3")
    if urllib3 is not None:
        if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
            return describe(exc.reason)
    text = str(exc)
    for needle, meaning in _MESSAGES:
        if needle in text:
            return meaning
    root = _os_error(exc)
    if root is not None:
        if root.errno == errno.ECONNREFUSED:
            return "connection refused (nothing listens there)"
        return root.strerror or errno.errorcode.get(root.errno, "failed")
    # After the messages: urllib3's failed connection is a subclass of its timeout.
    if urllib3 is not None and isinstance(exc, urllib3.exceptions.TimeoutError):
        return "no answer in time (timed out)"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer in time (timed out)"
    if requests is not None and isinstance(exc, requests.exceptions.ConnectionError):
        return "cannot connect"
    # A message in words ("HTTP 401: ...") is kept; one that wraps class names is not.
    if text and not _CLASS_NAMES.search(text):
        return text
    return "the request failed"


_CLASS_NAMES = re.compile(r"\b[A-Z]\w*(Error|Exception|Pool)\b|\w+\(")
