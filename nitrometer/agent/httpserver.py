"""A small HTTP/1.1 server with a bound on everything a client can make it spend.

Each connection has one thread, and there are at most `max_connections` of them: past that
the connection that has waited longest for a request (idle keep-alive, or headers still
coming) is closed to make room, and when none waits the new one is refused. Every phase of a
connection has a deadline enforced by one reaper thread, which shuts the socket down:
request line and headers as a whole (TLS handshake included), the response, and idle
keep-alive. Headers are capped in line length, total size and count; request bodies are
not accepted. So a client can hold at most a few KiB and one thread, for a few seconds.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from nitrometer.agent.http11 import Limits, Reject, Request, Response, read_request, response_head

if TYPE_CHECKING:
    import ssl  # imported only where TLS is configured (agent/webconfig.py)

log = logging.getLogger("nitrometer.web")

REAP_EVERY = 0.1  # seconds between two looks at the deadlines, at the most often
LINGER = 1.0  # seconds, and reads of up to 64 KiB, to drain a refused request
LINGER_READS = 16
JOIN_BELOW = 16384  # bytes of body sent in one write with the headers


class Reaper:
    """When the reaper must look next: the nearest deadline, not a fixed beat, so an idle
    server sleeps. A deadline nearer than the one it sleeps towards wakes it."""

    def __init__(self):
        self.wake = threading.Event()
        self.at = float("inf")

    def sooner(self, deadline: float) -> None:
        if deadline < self.at:
            self.wake.set()


class Connection:
    """One client: its socket, the phase it is in and when that phase must end."""

    def __init__(self, sock: socket.socket, peer: str):
        self.sock = sock
        self.fd = sock.fileno()  # stays valid through the TLS wrap, which detaches `sock`
        self.family = sock.family
        self.peer = peer
        self.phase = "header"
        self.since = time.monotonic()
        self.deadline = float("inf")
        self.reaper: Reaper | None = None

    def enter(self, phase: str, timeout: float) -> None:
        self.phase, self.since = phase, time.monotonic()
        self.deadline = self.since + timeout
        if self.reaper is not None:
            self.reaper.sooner(self.deadline)

    @property
    def waiting(self) -> bool:
        """No request in hand: closing it loses a client nothing but a reconnect."""
        return self.phase in ("header", "idle")

    def kill(self) -> None:
        """Wake the connection's thread from recv or send, TLS handshake included.

        shutdown(2) acts on the socket, whichever descriptor names it: a duplicate works
        even while the TLS wrap has the original detached. The thread closes the socket
        itself. Call with the server's lock held: the thread unregisters under that lock
        before it closes, so the descriptor cannot have been reused by another connection.
        """
        try:
            dup = socket.fromfd(self.fd, self.family, socket.SOCK_STREAM)
        except OSError:
            return
        try:
            dup.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            dup.close()


class BoundedHTTPServer:
    """Serves `handler(request) -> Response` with the bounds in `limits`.

    `tls()` gives the SSL context for a new connection (None: plain HTTP) and `peer_ok(cert)`
    may refuse a verified client certificate; both are read per connection, so a reload
    takes effect on the next connection.
    """

    server_name = "nitrometer"
    response_headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, address: tuple[str, int], handler: Callable[[Request], Response],
                 limits: Limits | None = None):
        self.limits = limits or Limits()
        self.handler = handler
        host, port = address
        family = socket.AF_INET
        if host == "" and socket.has_ipv6:
            family, host = socket.AF_INET6, "::"  # every interface, v4-mapped included
        elif ":" in host:
            family = socket.AF_INET6
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            self.socket.bind((host, port))
            self.socket.listen(self.limits.backlog)
        except OSError:
            self.socket.close()
            raise
        self.server_address = self.socket.getsockname()
        self._connections: dict[Connection, None] = {}  # insertion order: oldest first
        self._threads = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._reaper = Reaper()
        # Wakes the accept loop at shutdown, which otherwise sleeps until a client comes.
        self._wake_accept, self._waker = socket.socketpair()
        self.refused = 0
        self.evicted = 0
        self.expired = 0

    # -- hooks for the application -------------------------------------------------------
    def tls(self) -> ssl.SSLContext | None:
        return None

    def peer_ok(self, cert: dict | None) -> bool:
        return True

    # -- accept loop -----------------------------------------------------------------------
    def serve_forever(self) -> None:
        self._stopped.clear()
        reaper = threading.Thread(target=self._reap, name="nitrometer-web-reaper", daemon=True)
        reaper.start()
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(self.socket, selectors.EVENT_READ)
                sel.register(self._wake_accept, selectors.EVENT_READ)
                while not self._stop.is_set():
                    if any(key.fileobj is self.socket for key, _ in sel.select()):
                        self._accept()
        finally:
            self._stopped.set()
            self._reaper.wake.set()

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="nitrometer-web", daemon=True)
        thread.start()
        return thread

    def _accept(self) -> None:
        try:
            sock, addr = self.socket.accept()
        except OSError as exc:  # EMFILE and the like: back off rather than spin
            log.warning("cannot accept a connection: %s", exc.strerror)
            time.sleep(0.05)
            return
        peer = addr[0] if isinstance(addr, tuple) else str(addr)
        try:  # headers and a large body go in two writes: neither waits for an ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        conn = Connection(sock, peer)
        conn.reaper = self._reaper
        with self._lock:
            if len(self._connections) >= self.limits.max_connections:
                self._evict_locked()
            full = (len(self._connections) >= self.limits.max_connections
                    or self._threads >= self.limits.max_connections + 32)
            if not full:
                conn.enter("header", self.limits.header_timeout)
                self._connections[conn] = None
                self._threads += 1
        if full:
            self.refused += 1
            sock.close()
            return
        try:
            threading.Thread(target=self._serve_connection, args=(conn,),
                             name="nitrometer-web-conn", daemon=True).start()
        except RuntimeError:  # no thread to be had: refuse this one
            self._forget(conn)
            sock.close()

    def _evict_locked(self) -> None:
        waiting = [c for c in self._connections if c.waiting]
        if waiting:
            victim = min(waiting, key=lambda c: c.since)
            del self._connections[victim]
            self.evicted += 1
            victim.kill()

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._connections.pop(conn, None)
            self._threads -= 1

    def _reap(self) -> None:
        reaper = self._reaper
        while not self._stopped.is_set():
            reaper.wake.clear()  # before the deadlines are read: a nearer one set later wakes
            now = time.monotonic()
            with self._lock:
                for conn in [c for c in self._connections if c.deadline <= now]:
                    self.expired += 1
                    conn.kill()
                reaper.at = min((c.deadline for c in self._connections if c.deadline > now),
                                default=float("inf"))
            wait = None if reaper.at == float("inf") else max(reaper.at - now, REAP_EVERY)
            reaper.wake.wait(wait)

    # -- one connection ------------------------------------------------------------------
    def _serve_connection(self, conn: Connection) -> None:
        limits = self.limits
        stream, rfile = conn.sock, None
        try:
            stream.settimeout(limits.header_timeout)
            ctx = self.tls()
            if ctx is not None:
                stream = ctx.wrap_socket(conn.sock, server_side=True)
                conn.sock = stream
                if not self.peer_ok(stream.getpeercert()):
                    log.debug("client certificate of %s is not allowed", conn.peer)
                    return
            # Per read, a backstop only: the reaper enforces each phase's deadline.
            stream.settimeout(max(limits.header_timeout, limits.idle_timeout))
            rfile = stream.makefile("rb", buffering=limits.max_line)
            first = True
            while not self._stop.is_set():
                if not first:
                    conn.enter("idle", limits.idle_timeout)
                    if not rfile.peek(1):
                        return
                    conn.enter("header", limits.header_timeout)
                first = False
                try:
                    request = read_request(rfile, limits)
                except Reject as exc:
                    conn.enter("respond", limits.response_timeout)
                    self._send(stream, Response(exc.status, f"{exc}\n".encode(), close=True),
                               head=False)
                    self._linger(conn, rfile)
                    return
                if request is None:
                    return
                conn.enter("respond", limits.response_timeout)
                response = self.handler(request)
                tokens = (request.header("connection") or "").lower().split(",")
                if request.version == "HTTP/1.0" or "close" in map(str.strip, tokens):
                    response.close = True
                self._send(stream, response, head=request.method == "HEAD")
                if response.close:
                    return
        except (OSError, ValueError) as exc:  # resets, TLS failures, our own shutdowns
            log.debug("connection from %s ended: %s", conn.peer, exc)
        except Exception:  # a bug in one request must not take the server down
            log.exception("error serving %s", conn.peer)
        finally:
            self._forget(conn)
            for closable in (rfile, stream):  # the descriptor closes with the last of them
                try:
                    if closable is not None:
                        closable.close()
                except OSError:
                    pass

    def _linger(self, conn: Connection, rfile) -> None:
        """Read (and drop) what the client still sends for a moment before closing: closing
        with unread input resets the connection, and the client may never see our answer."""
        conn.enter("linger", LINGER)
        try:
            socket.socket.shutdown(conn.sock, socket.SHUT_WR)
            for _ in range(LINGER_READS):
                if not rfile.read1(65536):
                    break
        except (OSError, ValueError):
            pass

    def _send(self, stream, response: Response, *, head: bool) -> None:
        header = response_head(response, server=self.server_name, extra=self.response_headers)
        body = b"" if head else response.body
        if len(body) <= JOIN_BELOW:
            stream.sendall(header + body)
        else:  # the cached body as it is: no copy of it, in fresh pages, for every scrape
            stream.sendall(header)
            stream.sendall(body)

    # -- stopping --------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop accepting and close every connection; returns within a fraction of a second."""
        self._stop.set()
        try:
            self._waker.send(b"\0")
        except OSError:
            pass
        self._stopped.wait(1.0)
        with self._lock:
            for conn in self._connections:
                conn.kill()

    def wait_closed(self, timeout: float) -> bool:
        """Until every connection thread has ended (after shutdown), or the timeout."""
        deadline = time.monotonic() + timeout
        while self.busy_threads and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.busy_threads

    @property
    def busy_threads(self) -> int:
        with self._lock:
            return self._threads

    def server_close(self) -> None:
        self.socket.close()
        self._wake_accept.close()
        self._waker.close()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)
