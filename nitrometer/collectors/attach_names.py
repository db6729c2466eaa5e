"""The EBS attach-time block device names, asked of each controller with Identify Controller.

Each Identify runs in its own thread and the scan waits for it only until a deadline kept
here, in user space: the ioctl itself goes with the kernel's own admin timeout, since a
short one would make the nvme driver reset the controller. A controller that has not
answered by then is reported once and left without its name; its Identify goes on in its
thread, and no second one is sent to it while the first is in flight. A failed Identify is
asked again at the next scan.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("nitrometer.collectors.discovery")

IDENTIFY_WAIT = 2.0  # seconds a scan waits for a controller's Identify Controller


class _Ask:
    """One Identify in flight (or just finished) on one controller."""

    __slots__ = ("device", "started", "ended", "done", "bdev", "error", "reported")

    def __init__(self, device):
        self.device = device
        self.started = time.monotonic()
        self.ended = 0.0
        self.done = threading.Event()
        self.bdev = ""
        self.error: BaseException | None = None
        self.reported = False  # said to be slow (logged once, counted once)


class AttachNames:
    """bdev names by (controller, serial): remembered once known, asked at most once at a
    time per controller."""

    def __init__(self, identify, wait: float = IDENTIFY_WAIT):
        self._identify = identify  # path -> ControllerIdentity
        self.wait = wait
        self._known: dict[tuple[str, str], str] = {}
        self._asking: dict[tuple[str, str], _Ask] = {}

    def lookup(self, devices) -> tuple[dict, list]:
        """({key: bdev} for the devices given, [devices newly past the deadline])."""
        keys = {(d.controller, d.serial): d for d in devices}
        for key, device in keys.items():
            if key not in self._known and key not in self._asking:
                self._asking[key] = self._start(device)
        for key in keys:
            ask = self._asking.get(key)
            if ask is not None:
                ask.done.wait(max(ask.started + self.wait - time.monotonic(), 0.0))
        names, slow = {}, []
        for key, device in keys.items():
            ask = self._asking.get(key)
            if ask is not None and ask.done.is_set():
                del self._asking[key]
                self._finished(key, ask)
            elif ask is not None and not ask.reported:
                ask.reported = True
                slow.append(device)
                log.warning("device %s (%s): Identify Controller has not answered in %gs; "
                            "polled without its attach-time name, asked again once it "
                            "answers", device.name, device.serial, self.wait)
            names[key] = self._known.get(key, "")
        self.forget(keys)
        return names, slow

    def forget(self, live) -> None:
        """Drop what is known of controllers no longer present (an Identify still in flight
        on one ends on its own)."""
        for table in (self._known, self._asking):
            for key in [k for k in table if k not in live]:
                del table[key]

    def _start(self, device) -> _Ask:
        ask = _Ask(device)

        def run():
            try:
                ask.bdev = self._identify(device.path).bdev
            except Exception as exc:  # the name is a nicety: never fail discovery for it
                ask.error = exc
            ask.ended = time.monotonic()
            ask.done.set()

        threading.Thread(target=run, name=f"nitrometer-identify-{device.controller}",
                         daemon=True).start()
        return ask

    def _finished(self, key, ask: _Ask) -> None:
        if ask.reported:
            log.warning("device %s (%s): Identify Controller answered after %.0fs",
                        ask.device.name, ask.device.serial, ask.ended - ask.started)
        if ask.error is None:
            self._known[key] = ask.bdev
        else:  # asked again at the next scan
            log.debug("no bdev for %s: %s", ask.device.path, ask.error)
