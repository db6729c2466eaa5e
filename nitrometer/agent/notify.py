"""sd_notify: READY=1, WATCHDOG=1, STOPPING=1 to systemd over its unix datagram socket."""

from __future__ import annotations

import os
import socket


class Notifier:
    """A no-op outside systemd (NOTIFY_SOCKET unset)."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self.address = address or None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        watching = usec.isdigit() and (not pid or pid == str(os.getpid()))
        # Ping at half the timeout, as sd_watchdog_enabled(3) suggests.
        self.watchdog_interval = int(usec) / 2e6 if watching else None
        self.watchdog_timeout = int(usec) / 1e6 if watching else None
        self._last_ping = float("-inf")

    def send(self, message: str) -> bool:
        if not self.address:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(self.address)
                sock.sendall(message.encode())
            except OSError:
                return False
        return True

    def ready(self) -> bool:
        return self.send("READY=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self, now: float) -> bool:
        """Called by the poll loop after each completed tick; rate-limited."""
        if self.watchdog_interval is None or now - self._last_ping < self.watchdog_interval:
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")
