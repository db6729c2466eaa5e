"""Device discovery off the sampling thread: attached and detached devices come and go
without a restart, and a scan that hangs (Identify on a stuck controller) stalls nothing
but itself."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("nitrometer.sampling")


class DeviceWatcher:
    """Calls `scan()` now and then every `every` seconds on its own thread; the engine takes
    each new result with take(). `open(device)` makes a page source for a device."""

    def __init__(self, scan, open_source, every: float):
        self._scan = scan
        self.open = open_source
        self.every = every
        self._latest = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.scans = 0
        self._said_none = False

    def start(self) -> DeviceWatcher:
        self._thread = threading.Thread(target=self._loop, name="nitrometer-discovery",
                                        daemon=True)
        self._thread.start()
        return self

    def scan_now(self) -> None:
        """One scan on the caller's thread (tests, and the first scan of a command)."""
        self._publish(self._scan())

    def take(self):
        """The devices of the newest scan not yet taken, or None."""
        with self._lock:
            devices, self._latest = self._latest, None
        return devices

    def close(self) -> None:
        self._stop.set()

    def _publish(self, devices) -> None:
        self.scans += 1
        if not devices and not self._said_none:
            self._said_none = True
            log.warning("no Amazon NVMe devices found; rescanning every %gs", self.every)
        elif devices:
            self._said_none = False
        with self._lock:
            self._latest = list(devices)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._publish(self._scan())
            except Exception as exc:
                log.warning("device scan failed: %s", exc)
            self._stop.wait(self.every)
