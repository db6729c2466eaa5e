"""The agent's side of privilege separation: it asks the current reader for pages and
Identify data, and has the keeper replace a reader that died or stopped answering.

Requests are sent without waiting (`submit`): a sink is handed each reply, all replies
ready at once in one call, so reading every device costs a few wakeups per tick rather
than one per device. `request()` waits for its reply (Identify at discovery). While a
reader is being replaced every request fails at once (EIO), so the devices show as down
rather than with frozen values. `silent_for()` tells how long requests have gone
unanswered by any reader; the sampler stops feeding the systemd watchdog past its timeout
(nitrometer/agent/sampler.py), which is how a lost keeper gets the service restarted.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import signal
import socket
import threading
import time

from nitrometer.privsep import (
    KEEPER_MESSAGE,
    KEEPER_NEWS,
    KEEPER_REPLACE,
    LOG_ID,
    MAX_KEEPER_MESSAGE,
    MAX_MESSAGE,
    OP_GET_LOG_PAGE,
    OP_IDENTIFY,
    REPLY,
    REPLY_ERRNO,
    REPLY_NVME_STATUS,
    REPLY_OK,
    REQUEST,
)

log = logging.getLogger("nitrometer.privsep")

# A reader is replaced when a request has waited this long with no answer of any kind from
# it since. Never sooner: an admin command is never cut short (the kernel's own admin
# timeout, 60 s by default, resets the controller), a device may be slow while the kernel
# retries, and a reader blocked in the kernel cannot be killed before the ioctl ends
# anyway. Five minutes is several admin timeouts: a reader silent that long is itself
# stuck, not waiting on a device. Meanwhile the systemd watchdog (30 s) already restarts a
# service none of whose devices answers.
STUCK_AFTER = 300.0
KEEPER_EXIT_WAIT = 1.0  # seconds for the keeper to leave on its own at the agent's stop
FIRST_READER_TIMEOUT = 30.0  # seconds the start waits for the keeper's first reader
# Once a reply came while others are due, the receiver lets them gather this long before
# taking them all: a tick's replies come in a few wakeups, not one per device.
COALESCE = 0.002
HANDOVER = "NITROMETER_PRIVSEP_FDS"  # the keeper and reader sockets across a re-exec


class _Pending:
    __slots__ = ("sink", "token", "sent")

    def __init__(self, sink, token, sent: float):
        self.sink, self.token, self.sent = sink, token, sent


class _Waiter:
    """The sink of one blocking request."""

    def __init__(self):
        self.event = threading.Event()
        self.reply: tuple | None = None

    def deliver(self, replies: list) -> None:
        self.reply = replies[-1][1:]
        self.event.set()


class _Link:
    """One reader: its socket, its requests in flight, when it last answered."""

    def __init__(self, sock: socket.socket, pid: int):
        self.sock, self.pid = sock, pid
        self.pending: dict[int, _Pending] = {}
        self.dead = False
        self.replacing = False
        self.last_reply = time.monotonic()
        self.send_lock = threading.Lock()
        self.thread: threading.Thread | None = None


class Broker:
    def __init__(self, control: socket.socket, keeper_pid: int, first: _Link, *,
                 stuck_after: float = STUCK_AFTER):
        self.control, self.keeper_pid = control, keeper_pid
        self.stuck_after = stuck_after
        self.restarts = 0
        self.keeper_alive = True
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._link: _Link | None = first
        self._waiting_since: float | None = None
        self._keeper_thread: threading.Thread | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The current reader's pid (None while one is being replaced)."""
        link = self._link
        return None if link is None else link.pid

    def silent_for(self, now: float | None = None) -> float:
        """Seconds requests have waited with no reader answering; 0 when none waits."""
        with self._lock:
            since = self._waiting_since
        return 0.0 if since is None else (now or time.monotonic()) - since

    # -- threads, started with the first request (never before the agent's drop) ---------

    def _start_threads(self, link: _Link) -> None:
        if self._keeper_thread is None:
            self._keeper_thread = threading.Thread(target=self._watch_keeper, daemon=True,
                                                   name="nitrometer-keeper")
            self._keeper_thread.start()
        if link.thread is None:
            link.thread = threading.Thread(target=self._receive, args=(link,), daemon=True,
                                           name=f"nitrometer-reader-{link.pid}")
            link.thread.start()

    def _receive(self, link: _Link) -> None:
        ended = False
        while not ended:
            try:
                message = link.sock.recv(MAX_MESSAGE)
            except OSError:
                message = b""
            batch = []
            if len(message) >= REPLY.size and len(link.pending) > 1:
                time.sleep(COALESCE)
            # Take every reply already there, then hand them over in one go.
            while len(message) >= REPLY.size:
                batch.append(message)
                try:
                    message = link.sock.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:
                    message = b""
            else:
                ended = True
            self._deliver(link, batch)
        self._retire(link)
        link.sock.close()

    def _deliver(self, link: _Link, batch: list[bytes]) -> None:
        by_sink: dict = {}
        with self._lock:
            if batch:
                link.last_reply = time.monotonic()
                self._waiting_since = None
            for message in batch:
                rid, kind, code = REPLY.unpack_from(message)
                pending = link.pending.pop(rid, None)
                if pending is not None:
                    by_sink.setdefault(pending.sink, []).append(
                        (pending.token, kind, code, message[REPLY.size:]))
        for sink, replies in by_sink.items():
            sink.deliver(replies)

    def _retire(self, link: _Link) -> None:
        """No more requests to this reader; those in flight fail with EIO. Its socket is
        closed by its receiving thread, or here when it has none."""
        with self._lock:
            link.dead = True
            if self._link is link:
                self._link = None
            pending, link.pending = link.pending, {}
            unread = link.thread is None
        by_sink: dict = {}
        for p in pending.values():
            by_sink.setdefault(p.sink, []).append((p.token, REPLY_ERRNO, errno.EIO, b""))
        for sink, replies in by_sink.items():
            sink.deliver(replies)
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if unread:
            link.sock.close()

    def _watch_keeper(self) -> None:
        while True:
            try:
                message, fds, _flags, _addr = socket.recv_fds(self.control,
                                                              MAX_KEEPER_MESSAGE, 1)
            except OSError:
                message, fds = b"", []
            if not message:
                break
            self._news(message, fds)
        with self._lock:
            self.keeper_alive = False
        if not self._closed:
            log.error("the privileged keeper (pid %d) is gone: no device can be read until "
                      "the service restarts", self.keeper_pid)

    def _news(self, message: bytes, fds: list[int]) -> None:
        kind, pid = KEEPER_MESSAGE.unpack_from(message) if len(message) >= \
            KEEPER_MESSAGE.size else (0, 0)
        if kind != KEEPER_NEWS or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return
        link = _Link(socket.socket(fileno=fds[0]), pid)
        ended = message[KEEPER_MESSAGE.size:].decode("utf-8", "replace")
        with self._lock:
            old, self._link = self._link, link
            if ended:
                self.restarts += 1
        if old is not None:
            self._retire(old)
        if ended:
            log.warning("privileged reader replaced: %s; reader %d reads the devices now "
                        "(replacement %d)", ended, pid, self.restarts)

    # -- requests ------------------------------------------------------------------------

    def submit(self, opcode: int, path: str, sink, token, *, log_id: int = 0,
               nsid: int = 0, length: int = 0) -> None:
        """Send a request without waiting for it. Its reply comes once, as `(token, kind,
        code, data)` in a list given to `sink.deliver(replies)` from the receiving thread
        (EIO when its reader is retired first). OSError (EIO) when it could not be sent."""
        self._send(opcode, path, sink, token, log_id, nsid, length)

    def _send(self, opcode, path, sink, token, log_id, nsid, length) -> tuple[_Link, float]:
        rid = next(self._ids) & 0xFFFFFFFF
        with self._lock:
            if self._waiting_since is None:
                self._waiting_since = time.monotonic()
            link = self._link
            if link is None or link.dead:
                why = "being replaced" if self.keeper_alive else "gone, and its keeper too"
                raise OSError(errno.EIO, f"the privileged reader is {why}")
            sent = time.monotonic()
            link.pending[rid] = _Pending(sink, token, sent)
            self._start_threads(link)
        message = REQUEST.pack(rid, opcode, log_id, nsid, length) + os.fsencode(path)
        try:
            with link.send_lock:
                link.sock.send(message)
        except OSError as exc:
            with self._lock:
                ours = link.pending.pop(rid, None)
            self._retire(link)
            if ours is not None:  # else its EIO was delivered already
                raise OSError(errno.EIO,
                              f"the privileged reader is gone: {exc.strerror}") from None
        return link, sent

    def request(self, opcode: int, path: str, *, log_id: int = 0, nsid: int = 0,
                length: int = 0) -> bytes:
        """Send a request and wait for its reply."""
        from nitrometer import native

        waiter = _Waiter()
        link, sent = self._send(opcode, path, waiter, None, log_id, nsid, length)
        if not waiter.event.wait(self.stuck_after):
            self._replace_if_silent(link, sent)
            waiter.event.wait()
        kind, code, data = waiter.reply
        if kind == REPLY_OK:
            return data
        if kind == REPLY_NVME_STATUS:
            raise native.NvmeStatusError(f"the controller answered NVMe status {code:#x}", code)
        raise OSError(code, os.strerror(code))

    def replace_if_stuck(self, now: float | None = None) -> None:
        """Replace the reader when a request has waited `stuck_after` with no answer of any
        kind since it was sent; whoever submits calls this now and then (each tick)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            link = self._link
            if link is None or link.dead:
                return
            overdue = [p.sent for p in link.pending.values()
                       if link.last_reply < p.sent <= now - self.stuck_after]
        if overdue:
            self._replace_if_silent(link, max(overdue))

    def _replace_if_silent(self, link: _Link, sent: float) -> None:
        with self._lock:
            if link.dead or link.replacing or link.last_reply >= sent:
                return  # it answers others: only this device is slow
            link.replacing = True
        why = f"gave no answer for {self.stuck_after:g}s"
        try:
            self.control.send(KEEPER_MESSAGE.pack(KEEPER_REPLACE, link.pid) + why.encode())
        except OSError:
            pass  # no keeper: the watchdog takes it from here
        self._retire(link)

    def get_log_page(self, path: str, nsid: int, length: int) -> bytes:
        return self.request(OP_GET_LOG_PAGE, path, log_id=LOG_ID, nsid=nsid, length=length)

    def submit_log_page(self, path: str, nsid: int, length: int, sink, token) -> None:
        self.submit(OP_GET_LOG_PAGE, path, sink, token, log_id=LOG_ID, nsid=nsid,
                    length=length)

    def identify(self, path: str) -> bytes:
        return self.request(OP_IDENTIFY, path)

    # -- across a re-exec, and the end ---------------------------------------------------

    def handover(self) -> str:
        """The sockets, made inheritable, as text for the HANDOVER environment variable."""
        link = self._link
        if link is None or self._keeper_thread is not None:
            raise RuntimeError("hand over only before the first request")
        for sock in (self.control, link.sock):
            os.set_inheritable(sock.fileno(), True)
        return f"{self.control.fileno()},{self.keeper_pid},{link.sock.fileno()},{link.pid}"

    @classmethod
    def take_over(cls, text: str, **options) -> Broker:
        control_fd, keeper_pid, reader_fd, reader_pid = (int(x) for x in text.split(","))
        for fd in (control_fd, reader_fd):
            os.set_inheritable(fd, False)
        link = _Link(socket.socket(fileno=reader_fd), reader_pid)
        return cls(socket.socket(fileno=control_fd), keeper_pid, link, **options)

    def close(self) -> None:
        self._closed = True
        for sock in (self.control, *([self._link.sock] if self._link else [])):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.control.close()
        # The keeper ends when its control socket closes (an agent that is no longer root
        # may not signal it); it takes its reader along (PR_SET_PDEATHSIG).
        deadline = time.monotonic() + KEEPER_EXIT_WAIT
        try:
            while os.waitpid(self.keeper_pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    os.kill(self.keeper_pid, signal.SIGKILL)
                    os.waitpid(self.keeper_pid, 0)
                    break
                time.sleep(0.01)
        except (ProcessLookupError, ChildProcessError, PermissionError):
            pass


def first_reader(control: socket.socket, timeout: float = FIRST_READER_TIMEOUT) -> _Link:
    """The keeper's first reader, taken without a thread (the agent has not dropped yet)."""
    control.settimeout(timeout)
    try:
        message, fds, _flags, _addr = socket.recv_fds(control, MAX_KEEPER_MESSAGE, 1)
    except OSError as exc:
        raise OSError(errno.EIO, f"the privileged keeper started no reader: {exc}") from None
    finally:
        control.settimeout(None)
    if len(message) < KEEPER_MESSAGE.size or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise OSError(errno.EIO, "the privileged keeper started no reader")
    _kind, pid = KEEPER_MESSAGE.unpack_from(message)
    return _Link(socket.socket(fileno=fds[0]), pid)


def start_broker(dev_root: str, **options) -> Broker:
    """Fork the keeper, take its first reader; call before any thread starts."""
    from nitrometer.keeper import start_keeper

    control, keeper_pid = start_keeper(dev_root)
    return Broker(control, keeper_pid, first_reader(control), **options)
