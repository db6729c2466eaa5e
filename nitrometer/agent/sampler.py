"""The poll loop: one thread, a deadline schedule, every device read once per tick.

Decode, delta and quantiles happen in C (nitrometer.native); this module keeps the
schedule, the per-device state and the failure policy.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable

from nitrometer import native
from nitrometer.agent.events import EventSink
from nitrometer.agent.reads import ConcurrentReader, read_once
from nitrometer.agent.state import QUANTILES, AgentState, DeviceState
from nitrometer.collectors.base import Clock, PageSource

log = logging.getLogger("nitrometer.sampler")

MAX_BACKOFF = 30.0  # seconds between retries of a device that keeps failing
READ_BUDGET = 0.8  # share of the interval a device read may take before it counts as slow
STUCK_AFTER = 0.1  # share of the interval after which one read no longer holds up the rest


def failure_reason(exc: BaseException) -> str:
    """A short, stable label for the errors metric."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, native.PageError):
        return "bad_page"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, "oserror").lower()
    return "other"


class Sampler:
    def __init__(self, state: AgentState, open_sources: Callable[[], list[PageSource]], *,
                 interval: float = 1.0, clock: Clock | None = None,
                 events: EventSink | None = None, host=None, notifier=None,
                 rescan_interval: float | None = None, parallel_reads: bool = False):
        self.state = state
        self.open_sources = open_sources
        self.interval = interval
        self.clock = clock or Clock()
        self.events = events or EventSink()
        self.host = host
        self.notifier = notifier
        self.rescan_interval = rescan_interval  # None: the source set never changes
        # Real devices are read concurrently, so one hung device cannot stall the others.
        self.parallel_reads = parallel_reads
        self.reader = ConcurrentReader()
        self.sources: dict[tuple[str, str], PageSource] = {}
        self._next_rescan = None
        self._last_tick = None
        # Maps the clock's monotonic time to wall time for event timestamps.
        self.wall_origin = time.time() - self.clock.monotonic()
        self.last_tick_completed = None  # real monotonic time, for the watchdog
        self.stop_event = threading.Event()

    def wall(self, t: float) -> float:
        return self.wall_origin + t

    # -- sources -------------------------------------------------------------------------

    def rescan(self) -> None:
        """Open sources for new devices, close those of devices that went away."""
        try:
            fresh = self.open_sources()
        except Exception as exc:
            log.warning("device scan failed: %s", exc)
            return
        seen = set()
        for source in fresh:
            key = (source.device.name, source.device.serial)
            seen.add(key)
            if key in self.sources:
                source.close()
                continue
            self.sources[key] = source
            with self.state.lock:
                self.state.device_state(source.device)
            log.info("polling %s (%s, %s)", source.device.name, source.device.kind,
                     source.device.serial)
        for key in [k for k in self.sources if k not in seen]:
            self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        source = self.sources.pop(key)
        source.close()
        with self.state.lock:
            dev = self.state.devices.pop(source.device.serial, None)
        if dev is not None:
            self.events.write(dev.episodes.flush())
        log.info("device %s (%s) is gone", source.device.name, source.device.serial)

    def close(self) -> None:
        """Close every source and write the episodes still open."""
        self.reader.close()
        for key in list(self.sources):
            source = self.sources.pop(key)
            source.close()
        with self.state.lock:
            ended = [e for dev in self.state.devices.values() for e in dev.episodes.flush()]
        self.events.write(ended)

    # -- one tick ------------------------------------------------------------------------

    def tick(self) -> None:
        started = self.clock.monotonic()
        real_started = time.monotonic()
        if self._next_rescan is None or (self.rescan_interval and started >= self._next_rescan):
            self.rescan()
            self._next_rescan = started + (self.rescan_interval or 0)
        io_size = self.state.io_size
        due = []
        for key, source in list(self.sources.items()):
            with self.state.lock:
                dev = self.state.device_state(source.device)
            if dev.retry_at <= started and not self.reader.busy(key):
                due.append((key, source, dev))
        for (_, source, dev), outcome in self._read_all(due):
            self._poll(source, dev, outcome, started, io_size)
        host = self.host.sample() if self.host is not None else {}
        elapsed = 0.0 if self._last_tick is None else started - self._last_tick
        self._last_tick = started
        with self.state.lock:
            self.state.host = host
            if self.state.instance is not None:
                self.state.instance.accrue(elapsed)
            self.state.record_poll(time.monotonic() - real_started)
            self.state.ticks += 1
            self.state.version += 1
        self.last_tick_completed = time.monotonic()
        if self.notifier is not None:
            self.notifier.watchdog(self.last_tick_completed)

    def _read_all(self, due: list):
        """(entry, outcome) for each due device, each as soon as its read is back."""
        if not self.parallel_reads:
            for entry in due:
                yield entry, read_once(entry[1])
            return
        yield from self.reader.read_all(due, self.interval * READ_BUDGET,
                                        self.interval * STUCK_AFTER)

    def _poll(self, source: PageSource, dev: DeviceState, outcome, now: float,
              io_size: bool) -> None:
        try:
            if isinstance(outcome, Exception):
                raise outcome
            raw, t = outcome
            summary, relayout = None, False
            if dev.last_page is None:
                page = native.decode(raw)
            else:
                try:
                    page, summary = native.sample(dev.last_page, raw, QUANTILES)
                except native.LayoutChanged as exc:
                    # Another layout (bins, bands) at the same serial: a new set of counters.
                    page, relayout = exc.page, True
        except Exception as exc:
            self._failed(source, dev, exc, now)
            return
        with self.state.lock:
            if relayout:
                dev.resets += 1
            ended = dev.observe(page, summary, t, self.wall(t), bands=io_size)
            recovered = not dev.up
            dev.up, dev.failures, dev.retry_at = True, 0, 0.0
            # Published now, not at the tick's end: a device still blocked in its read must
            # not hold back the others' numbers.
            self.state.version += 1
        if recovered:
            log.info("device %s (%s) recovered", source.device.name, source.device.serial)
        if ended:
            self.events.write(ended)

    def _failed(self, source: PageSource, dev: DeviceState, exc: BaseException,
                now: float) -> None:
        reason = failure_reason(exc)
        with self.state.lock:
            self.state.count_error(source.device, reason)
            first = dev.up
            dev.up = False
            dev.failures += 1
            backoff = min(self.interval * 2 ** (dev.failures - 1), max(MAX_BACKOFF,
                                                                        self.interval))
            dev.retry_at = now + backoff
            self.state.version += 1
        if first:
            log.warning("device %s (%s) failing (%s): %s; retrying with backoff",
                        source.device.name, source.device.serial, reason, exc)

    # -- the loop ------------------------------------------------------------------------

    def run(self, ticks: int | None = None, stop: threading.Event | None = None) -> int:
        """Tick on a deadline schedule until stopped or `ticks` done; returns ticks done."""
        stop = stop or self.stop_event
        deadline = self.clock.monotonic()
        done = 0
        while not stop.is_set() and (ticks is None or done < ticks):
            self.tick()
            done += 1
            deadline += self.interval
            late = self.clock.monotonic() - deadline
            if late > self.interval:
                # Skip the ticks we cannot make up rather than bursting to catch up.
                missed = int(late // self.interval)
                with self.state.lock:
                    self.state.overruns += missed
                    self.state.version += 1
                deadline += missed * self.interval
                log.debug("poll loop %.3fs late: skipped %d ticks", late, missed)
            if ticks is not None and done >= ticks:
                break
            self.clock.sleep_until(deadline, stop)
        return done

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="nitrometer-sampler", daemon=True)
        thread.start()
        return thread

    def healthy(self, within: float) -> bool:
        """Whether a tick completed in the last `within` real seconds."""
        last = self.last_tick_completed
        return last is not None and time.monotonic() - last <= within
