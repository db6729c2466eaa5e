"""What the exporter serves: per-device running totals, the last second's values, peaks.

The sampling engine decides what each page means; this module only adds its results up.
Every exported counter is the agent's own running total of the deltas the C core computed
(added up in C by each device's one call a poll, and copied here under the lock with each
interval), so whatever the device does (restart, layout change, a counter stepping back) no
exported counter ever goes down.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field

from nitrometer import devicecore
from nitrometer.collectors.base import Device
from nitrometer.logpage import exceeded_limits
from nitrometer.sampling.device import failure_reason, key_of
from nitrometer.sampling.interval import US, Limits

log = logging.getLogger("nitrometer.agent")
PEAK_QUANTILE = 0.99  # the peak latency gauge's quantile (its name says p99)

POLL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class PeakWindow:
    """Maximum of each per-second value over the last `window` seconds.

    Each value keeps the entries that may still become its maximum, newest last and each
    smaller than the one before (a value is dropped once a larger one comes after it: it
    can never be the maximum again). Adding costs O(1) amortized and reading the peaks a
    dict of the first entries: no scan of the window, which a render would pay under the
    state lock."""

    def __init__(self, window: float):
        self.window = window
        self._candidates: dict = {}  # key -> deque of (t, value), values decreasing
        # No first entry is older than this: until the window passes it, nothing expires
        # and add() need not look at every value.
        self._oldest = math.inf

    def add(self, t: float, values: dict) -> None:
        candidates = self._candidates
        for key, value in values.items():
            if value != value:  # NaN: no value this second
                continue
            kept = candidates.get(key)
            if kept is None:
                kept = candidates[key] = deque()
                if t < self._oldest:
                    self._oldest = t
            while kept and kept[-1][1] <= value:
                kept.pop()
            kept.append((t, value))
        horizon = t - self.window
        if self._oldest > horizon:
            return
        oldest = math.inf
        for key in list(candidates):
            kept = candidates[key]
            while kept and kept[0][0] <= horizon:
                kept.popleft()
            if not kept:
                del candidates[key]
            elif kept[0][0] < oldest:
                oldest = kept[0][0]
        self._oldest = oldest

    def peaks(self) -> dict:
        return {key: kept[0][1] for key, kept in self._candidates.items()}


def peaks_of(entries) -> dict:
    out: dict = {}
    for _t, values in entries:
        for key, value in values.items():
            if value > out.get(key, -math.inf):
                out[key] = value
    return out


def peak_values(interval) -> dict:
    """The per-second values whose peaks are exported, from one Interval."""
    read, write = interval.op("read"), interval.op("write")
    read_us = read.quantiles_us.get(PEAK_QUANTILE)
    write_us = write.quantiles_us.get(PEAK_QUANTILE)
    return {("iops", "read"): read.iops, ("throughput", "read"): read.throughput,
            ("latency_p99", "read"): math.nan if read_us is None else read_us * US,
            ("iops", "write"): write.iops, ("throughput", "write"): write.throughput,
            ("latency_p99", "write"): math.nan if write_us is None else write_us * US}


@dataclass
class DeviceState:
    device: Device
    peak_window: float = 60.0
    totals: devicecore.Totals = field(default_factory=devicecore.Totals)
    band_labels: tuple[str, ...] = ()  # of the totals' layout, computed once
    moved_warned: bool = False
    version: int = 0  # of the last page
    exceeded_now: dict = field(default_factory=dict)
    exceeded_intervals: int = 0
    up: bool = True
    # Copied from the engine's tracker each tick.
    resets: int = 0
    layout_changes: int = 0
    glitches: dict = field(default_factory=dict)
    episodes: dict = field(default_factory=dict)  # (scope, limit) -> ended episodes
    peaks: PeakWindow = None  # type: ignore[assignment]
    scopes: tuple = ()  # the limits of the device's kind (the kind never changes)
    layout_known: bool = False  # band_labels are those of the totals' layout, kept for good

    def __post_init__(self):
        self.peaks = PeakWindow(self.peak_window)
        self.scopes = exceeded_limits(self.device.kind)

    @property
    def live(self) -> bool:
        return not self.totals.empty

    def publish(self, totals: devicecore.Totals) -> None:
        """Takes the running totals the engine keeps for the device (a struct copy)."""
        self.totals.copy_from(totals)
        if not self.layout_known and self.live:
            self.layout_known = True
            self.band_labels = tuple(band.label for band in self.totals.page.bands)
        if not self.moved_warned and (self.totals.band_ios_unplaced or
                                      self.totals.band_ios_widened):
            self.moved_warned = True
            log.warning("%s (%s): IO-size bands changed; %d band IOs have no band in the "
                        "exported histograms and %d went into the widest one (logged once "
                        "per device)", self.device.name, self.device.serial,
                        self.totals.band_ios_unplaced, self.totals.band_ios_widened)

    def baseline(self, page) -> None:
        """A first page (counted from the device's own zero once the next page has grown
        from it) or a new histogram layout (that interval is lost, not counted twice): the
        engine's totals have it; here only its version."""
        self.version = page.version

    def interval(self, interval, peaks: bool, totals: devicecore.Totals) -> None:
        self.publish(totals)
        self.version = interval.page.version
        throttled = interval.throttled()
        if throttled:
            self.exceeded_now = {key: key in throttled for key in self.scopes}
            self.exceeded_intervals += 1
        elif not self.exceeded_now or True in self.exceeded_now.values():
            self.exceeded_now = dict.fromkeys(self.scopes, False)  # replaced, never changed
        if peaks:
            self.peaks.add(interval.end, peak_values(interval))


class AgentState:
    """Everything shared between the sampler thread and scrapes; guarded by `lock`.

    `version` goes up whenever what a scrape would show changes (a tick, a reload), so a
    rendered exposition can be reused until then."""

    def __init__(self, peak_window: float = 60.0):
        self.lock = threading.Lock()
        self.peak_window = peak_window
        self.devices: dict[tuple[str, str], DeviceState] = {}  # by serial: survives renames
        self.device_errors: dict[tuple[str, str, str, str], int] = {}  # labels + reason
        self.poll_buckets = [0] * (len(POLL_BUCKETS) + 1)
        self.poll_sum = 0.0
        self.poll_count = 0
        self.overruns = 0
        self.reader_restarts: int | None = None  # None: no privileged reader
        self.tick_errors = 0
        self.ticks = 0
        self.version = 0
        self.host: dict[str, float] = {}
        self.instance = None  # agent.instance.InstanceContext when identity is on
        self.io_size = True
        self.peaks_enabled = True
        self.buckets = "coarse"  # --histogram.buckets
        self.volumes = None  # collectors.volumes.VolumeDirectory
        # Run by the sampling thread once a tick is folded in, outside the lock (the
        # exporter renders ahead there).
        self.after_tick: list = []
        self._limits: dict = {}  # device key -> (volume, instance limits, Limits | None)

    def limits_of(self, device: Device) -> Limits | None:
        """The limits the device works under as the agent knows them (its volume's, the
        instance's for its kind), for the engine's headroom; asked from the sampling thread."""
        volume = self.volumes.get(device.serial) if self.volumes is not None and \
            device.kind == "ebs" else None
        instance = self.instance.limits if self.instance is not None else None
        if volume is None and not instance:
            return None
        key = key_of(device)
        known = self._limits.get(key)
        if known is not None and known[0] is volume and known[1] is instance:
            return known[2]  # the same as last time: not built again every poll
        limits = Limits(
            volume_type=volume.volume_type if volume is not None else "",
            volume_iops=volume.iops if volume is not None else None,
            volume_throughput=volume.throughput if volume is not None else None,
            instance={op: values for (kind, op), values in (instance or {}).items()
                      if kind == device.kind})
        limits = limits if limits.known else None
        self._limits[key] = (volume, instance, limits)
        return limits

    def device_state(self, device: Device) -> DeviceState:
        key = key_of(device)
        state = self.devices.get(key)
        if state is None:
            state = self.devices[key] = DeviceState(device, self.peak_window)
        elif state.device != device:
            if state.device.labels != device.labels:
                self._forget_errors(state.device)  # the old name's series go with it
            state.device = device
        return state

    def apply(self, result, trackers: dict) -> None:
        """Fold one engine tick in; the caller holds the lock."""
        for device in result.removed:
            self._limits.pop(key_of(device), None)
            gone = self.devices.pop(key_of(device), None)
            self._forget_errors(gone.device if gone else device)
        for device in result.added:
            self.device_state(device)
        devices = self.devices
        for key, tracker in trackers.items():
            dev = devices.get(key)
            if dev is None or dev.device is not tracker.device:
                dev = self.device_state(tracker.device)
            dev.resets, dev.layout_changes = tracker.resets, tracker.layout_changes
            dev.up = tracker.up
            # Copies, made only when the tracker's differ: a render may hold the last ones.
            if dev.glitches != tracker.glitches:
                dev.glitches = dict(tracker.glitches)
            ended = tracker.episodes.ended_counts
            if dev.episodes != ended:
                dev.episodes = dict(ended)
        for device, page in result.baselines:
            self.device_state(device).baseline(page)
        for interval in result.intervals:
            key = key_of(interval.device)
            dev = devices.get(key)
            if dev is None or dev.device is not interval.device:
                dev = self.device_state(interval.device)
            dev.interval(interval, self.peaks_enabled, trackers[key].totals)
        for device, exc, _first in result.failed:
            self.count_error(device, failure_reason(exc))
        self.record_poll(result.duration)
        self.ticks += 1
        self.version += 1

    def record_poll(self, seconds: float) -> None:
        for i, bound in enumerate(POLL_BUCKETS):
            if seconds <= bound:
                self.poll_buckets[i] += 1
                break
        else:
            self.poll_buckets[-1] += 1
        self.poll_sum += seconds
        self.poll_count += 1

    def count_error(self, device: Device, reason: str) -> None:
        key = (device.name, device.serial, device.kind, reason)
        self.device_errors[key] = self.device_errors.get(key, 0) + 1

    def _forget_errors(self, device: Device) -> None:
        for key in [k for k in self.device_errors if k[:3] == (device.name, device.serial,
                                                                 device.kind)]:
            del self.device_errors[key]
