"""The sampling engine: which devices to read, when, and what their pages mean.

The agent and every device command (snapshot, diagnose, record, replay) run this same
engine; they differ only in what they do with each tick's result. A tick asks every due
device for a page (all at once for real devices, sampling/polled.py; in line for
simulations and recordings), folds each page into its device's tracker, and hands back
the intervals, baselines, failures and episode events.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from nitrometer import ec2
from nitrometer.collectors.base import KIND_OTHER, Clock
from nitrometer.errors import DeviceError
from nitrometer.sampling.device import DeviceTracker, key_of, no_limits
from nitrometer.sampling.episodes import DEFAULT_GAP, DEFAULT_ONGOING_EVERY
from nitrometer.sampling.interval import DEFAULT_EXCEEDED_SHARE, Interval
from nitrometer.sampling.polled import PolledReads
from nitrometer.sampling.reads import read_once
from nitrometer.timefmt import MAX_INTERVAL, MIN_INTERVAL

log = logging.getLogger("nitrometer.sampling")

CATCH_UP_SLACK = 0.25  # seconds of recorder jitter tolerated when skipping recorded pages


class SlowRead(DeviceError):
    """A read still in flight a whole interval after it started; its page is used when it
    comes."""

    reason = "timeout"


class Late:
    """An answer that came after its tick's budget, from a read reported slow."""

    __slots__ = ("outcome",)

    def __init__(self, outcome):
        self.outcome = outcome


class SourceEnded(DeviceError):
    """Every device of a recording ran out of pages."""


@dataclass(frozen=True)
class Settings:
    interval: float = 1.0
    exceeded_share: float = DEFAULT_EXCEEDED_SHARE
    episode_gap: int = DEFAULT_GAP
    ongoing_every: float = DEFAULT_ONGOING_EVERY
    read_budget: float = 0.8  # share of the interval a tick waits for reads
    catch_up: bool = False  # recordings: skip pages until an interval of recorded time

    def __post_init__(self):
        if not MIN_INTERVAL <= self.interval <= MAX_INTERVAL:  # also nan
            raise ValueError(f"interval {self.interval:g}s: from {MIN_INTERVAL:g}s to "
                             f"{MAX_INTERVAL:g}s")


@dataclass
class TickResult:
    started: float  # on the engine's clock
    intervals: list = field(default_factory=list)  # Interval
    baselines: list = field(default_factory=list)  # (device, page): first or new layout
    readings: list = field(default_factory=list)  # (device, raw, t): every good page
    failed: list = field(default_factory=list)  # (device, exception, first time)
    recovered: list = field(default_factory=list)  # devices readable again
    added: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    renamed: list = field(default_factory=list)  # (old device, new device)
    ended: list = field(default_factory=list)  # devices whose recording ran out
    events: list = field(default_factory=list)  # episode events (dicts)
    duration: float = 0.0  # real seconds the tick took


class Engine:
    def __init__(self, sources=(), *, settings: Settings | None = None,
                 clock: Clock | None = None, threaded: bool = False, watcher=None,
                 limits_of=None):
        self.settings = settings or Settings()
        self.limits_of = limits_of or no_limits  # device -> Limits | None
        self.clock = clock or Clock()
        self.watcher = watcher
        self.reads = PolledReads() if threaded else None
        self.trackers: dict[tuple[str, str], DeviceTracker] = {}
        self.instance_type: str | None = None  # bounds each device's growth: set_instance_type
        self.stalled: set = set()  # devices whose in-flight read was reported slow
        self.overruns = 0
        self.tick_errors = 0
        self.ticks = 0
        self._deadline: float | None = None
        self.closed = False
        # Maps the clock's monotonic time to wall time, for event timestamps.
        self.wall_origin = time.time() - self.clock.monotonic()
        for source in sources:
            self._add(source.device, source)

    # -- devices -------------------------------------------------------------------------

    @property
    def devices(self) -> list:
        return [t.device for t in self.trackers.values()]

    @property
    def finished(self) -> bool:
        """Every device's recording ran out (never true for live devices)."""
        return bool(self.trackers) and all(t.ended for t in self.trackers.values())

    def wall(self, t: float) -> float:
        return self.wall_origin + t

    def _add(self, device, source) -> DeviceTracker:
        s = self.settings
        tracker = DeviceTracker(device, source, share=s.exceeded_share,
                                episode_gap=s.episode_gap, ongoing_every=s.ongoing_every,
                                bounds=ec2.device_bounds(device.kind, self.instance_type))
        tracker.limits_of = self.limits_of
        self.trackers[tracker.key] = tracker
        if self.reads is not None:
            self.reads.add(tracker.key, source)
        return tracker

    def set_instance_type(self, instance_type: str | None) -> None:
        """Bound what each device may add per second by this instance type's published
        limits (devices found later too); unknown types keep the ceilings."""
        self.instance_type = instance_type or None
        for tracker in self.trackers.values():
            tracker.set_bounds(ec2.device_bounds(tracker.device.kind, self.instance_type))

    def set_limits(self, limits_of) -> None:
        """Where each device's limits come from (device -> sampling.Limits or None), for the
        headroom of every interval from now on."""
        self.limits_of = limits_of or no_limits
        for tracker in self.trackers.values():
            tracker.limits_of = self.limits_of

    def _drop(self, tracker: DeviceTracker, result: TickResult) -> None:
        del self.trackers[tracker.key]
        self.stalled.discard(tracker.key)
        if self.reads is not None:
            self.reads.remove(tracker.key)
        _close(tracker.source)
        result.events += tracker.episodes.flush()
        result.removed.append(tracker.device)
        log.info("device %s (%s) is gone", tracker.device.name, tracker.device.serial)

    def _reconcile(self, result: TickResult) -> None:
        """Take the watcher's latest scan: new devices, renames, detached ones."""
        devices = self.watcher.take() if self.watcher is not None else None
        if devices is None:
            return
        seen = set()
        for device in devices:
            if device.kind == KIND_OTHER:
                continue
            key = key_of(device)
            seen.add(key)
            tracker = self.trackers.get(key)
            if tracker is None:
                self._open(device, result)
            elif tracker.device != device:
                self._renamed(tracker, device, result)
        for tracker in [t for k, t in self.trackers.items() if k not in seen]:
            self._drop(tracker, result)

    def _open(self, device, result: TickResult) -> None:
        try:
            source = self.watcher.open(device)
        except Exception as exc:
            log.warning("cannot poll %s (%s): %s", device.name, device.serial, exc)
            return
        self._add(device, source)
        result.added.append(device)
        log.info("polling %s (%s, %s)", device.name, device.kind, device.serial)

    def _renamed(self, tracker: DeviceTracker, device, result: TickResult) -> None:
        """Same serial, other name or attributes: keep the baseline and counts."""
        old = tracker.device
        tracker.device = tracker.episodes.device = device
        if (old.path, old.nsid) == (device.path, device.nsid):
            tracker.source.device = device
            return
        try:
            source = self.watcher.open(device)
        except Exception as exc:
            log.warning("cannot poll %s (%s): %s", device.name, device.serial, exc)
            return
        if self.reads is not None:
            self.reads.remove(tracker.key)
            self.reads.add(tracker.key, source)
        self.stalled.discard(tracker.key)
        _close(tracker.source)
        tracker.source = source
        result.renamed.append((old, device))
        log.info("device %s (%s) is now %s", old.name, device.serial, device.name)

    # -- one tick ------------------------------------------------------------------------

    def tick(self) -> TickResult:
        real_start = time.monotonic()
        now = self.clock.monotonic()
        result = TickResult(started=now)
        self._reconcile(result)
        due = [t for t in self.trackers.values() if not t.ended and t.retry_at <= now]
        if self.reads is None:
            outcomes = [(t, self._read_inline(t)) for t in due]
        else:
            outcomes = self._read_threaded(due, real_start, now, result)
        for tracker, outcome in outcomes:
            self._fold(tracker, outcome, now, result)
        self.ticks += 1
        result.duration = time.monotonic() - real_start
        return result

    def _read_inline(self, tracker: DeviceTracker):
        outcome = read_once(tracker.source)
        if self.settings.catch_up and tracker.baseline is not None:
            # A recording hands out its next page whenever asked: skip to the interval.
            wanted = self.settings.interval - CATCH_UP_SLACK
            while not isinstance(outcome, BaseException) and \
                    outcome[1] - tracker.baseline_time < wanted:
                outcome = read_once(tracker.source)
        return outcome

    def _read_threaded(self, due, real_start: float, now: float, result: TickResult):
        asked = {t.key for t in due if self.reads.request(t.key)}
        budget = self.settings.interval * self.settings.read_budget
        answers = self.reads.collect(list(self.trackers), real_start + budget)
        out = []
        for key, tracker in self.trackers.items():
            if key in answers:
                # A page that took longer than its tick is used, but a device is back to
                # health only with a read that kept time.
                late = key not in asked and key in self.stalled
                if not late:
                    self.stalled.discard(key)
                out.append((tracker, Late(answers[key]) if late else answers[key]))
                continue
            since = self.reads.in_flight(key)
            if since is not None and key not in self.stalled and \
                    time.monotonic() - since >= self.settings.interval:
                self.stalled.add(key)
                out.append((tracker, SlowRead(
                    f"{tracker.device.path}: read still in flight after "
                    f"{time.monotonic() - since:.1f}s (its page is used when it comes)")))
        return out

    def _fold(self, tracker: DeviceTracker, outcome, now: float, result: TickResult) -> None:
        device = tracker.device
        late = isinstance(outcome, Late)
        if late:
            outcome = outcome.outcome
            self.stalled.discard(tracker.key)  # the next read may be stalled again
        if isinstance(outcome, BaseException):
            self._failed(tracker, outcome, now, result)
            return
        raw, t = outcome
        try:
            interval = tracker.observe(raw, t)
        except DeviceError as exc:
            self._failed(tracker, exc, now, result)
            return
        if not late and tracker.succeeded():
            result.recovered.append(device)
        result.readings.append((device, raw, t))
        if interval is None:
            if not tracker.holding:
                result.baselines.append((device, tracker.baseline))
            return
        result.intervals.append(interval)
        result.events += tracker.episodes.update(self.wall(interval.start),
                                                 self.wall(interval.end), interval)

    def _failed(self, tracker: DeviceTracker, exc: BaseException, now: float,
                result: TickResult) -> None:
        if _ran_out(exc):
            tracker.ended = True
            result.ended.append(tracker.device)
            return
        slow = isinstance(exc, SlowRead)
        first = tracker.failed(exc, now, 0.0 if slow else self.settings.interval)
        if slow:
            tracker.retry_at = 0.0  # no new read while this one is in flight anyway
        result.failed.append((tracker.device, exc, first))

    # -- the schedule --------------------------------------------------------------------

    def wait_next(self, stop: threading.Event | None = None) -> None:
        """Sleep until the next tick is due; skip (and count) ticks that cannot be made up."""
        interval = self.settings.interval
        if self._deadline is None:
            self._deadline = self.clock.monotonic()
            return
        self._deadline += interval
        late = self.clock.monotonic() - self._deadline
        if late > interval:
            missed = int(late // interval)
            self.overruns += missed
            self._deadline += missed * interval
            log.debug("sampling %.3fs late: skipped %d ticks", late, missed)
        self.clock.sleep_until(self._deadline, stop)

    def run(self, on_tick, stop: threading.Event, ticks: int | None = None) -> int:
        """Tick on schedule until stopped or `ticks` are done; returns ticks done. An error
        in a tick is counted and logged, never the end of sampling."""
        done = 0
        while not stop.is_set() and (ticks is None or done < ticks):
            self.wait_next(stop)
            if stop.is_set():
                break
            try:
                on_tick(self.tick())
            except Exception:
                self.tick_errors += 1
                log.exception("sampling tick failed; going on")
            done += 1
        return done

    def close(self) -> list[dict]:
        """Stop reading (never waiting for a hung read) and close every episode."""
        self.closed = True
        if self.reads is not None:
            self.reads.close()
        events = []
        for tracker in self.trackers.values():
            _close(tracker.source)
            events += tracker.episodes.flush()
        if self.watcher is not None:
            self.watcher.close()
        return events


def _ran_out(exc: BaseException) -> bool:
    from nitrometer.collectors.replay import RecordingEnded

    return isinstance(exc, (RecordingEnded, EOFError, StopIteration))


def _close(source) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:  # closing is best effort; the device may be gone
            log.debug("closing %s: %s", getattr(source, "device", source), exc)


__all__ = ["Engine", "Interval", "Settings", "SlowRead", "SourceEnded", "TickResult"]
