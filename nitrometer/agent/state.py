"""What the sampler knows and the exporter serves: per-device totals, latest values, peaks.

Every exported counter is the agent's own running total of the deltas the C core computed
(native.Totals, added up in C), so a device resetting its counters or a u32 bin wrapping
never makes one go down.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

from nitrometer import native
from nitrometer.agent.events import EpisodeTracker
from nitrometer.collectors.base import Device
from nitrometer.logpage import EXCEEDED_COUNTERS, exceeded_limits

US = 1e-6
OPS = ("read", "write")
QUANTILES = native.DEFAULT_QUANTILES
POLL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class PeakWindow:
    """Maximum of each per-second value over the last `window` seconds.

    The maxima are kept as entries come and go, and found again from the window only when
    a maximum leaves it, so reading them costs a dict copy."""

    def __init__(self, window: float):
        self.window = window
        self.entries: deque[tuple[float, dict]] = deque()
        self._peaks: dict = {}
        self._stale = False

    def add(self, t: float, values: dict) -> None:
        values = {k: v for k, v in values.items() if not math.isnan(v)}
        self.entries.append((t, values))
        peaks = self._peaks
        for key, value in values.items():
            if value > peaks.get(key, -math.inf):
                peaks[key] = value
        while self.entries and self.entries[0][0] <= t - self.window:
            _t, gone = self.entries.popleft()
            if not self._stale and any(v >= peaks.get(k, -math.inf) for k, v in gone.items()):
                self._stale = True

    def peaks(self) -> dict:
        if self._stale:
            self._peaks = peaks_of(self.entries)
            self._stale = False
        return dict(self._peaks)


def peaks_of(entries) -> dict:
    out: dict = {}
    for _t, values in entries:
        for key, value in values.items():
            if value > out.get(key, -math.inf):
                out[key] = value
    return out


@dataclass
class DeviceState:
    device: Device
    peak_window: float = 60.0
    last_page: object | None = None
    last_time: float = 0.0
    last_wall: float = 0.0
    totals: native.Totals = field(default_factory=native.Totals)
    band_labels: tuple[str, ...] = ()  # of the totals' layout, computed once per layout
    resets: int = 0
    latest: dict = field(default_factory=dict)
    exceeded_now: dict = field(default_factory=dict)
    exceeded_intervals: int = 0
    up: bool = True
    failures: int = 0
    retry_at: float = 0.0
    episodes: EpisodeTracker = None  # type: ignore[assignment]
    peaks: PeakWindow = None  # type: ignore[assignment]

    def __post_init__(self):
        self.episodes = EpisodeTracker(self.device)
        self.peaks = PeakWindow(self.peak_window)

    @property
    def scopes(self) -> tuple[tuple[str, str], ...]:
        return exceeded_limits(self.device.kind)

    def add_counts(self, page) -> None:
        """Add a delta page (or the first page, counted from the device's own zero)."""
        try:
            self.totals.add(page)
        except native.PageError:
            # Another bin or band layout at this serial: its totals start over (the sampler
            # counts this as a reset).
            self.totals = native.Totals()
            self.totals.add(page)
            self.band_labels = ()
        if not self.band_labels and page.version == 1:
            self.band_labels = tuple(band.label for band in self.totals.page.bands)

    def observe(self, page, summary, t: float, wall: float, *, bands: bool) -> list:
        """Fold one poll in; returns the exceeded episodes that ended with it."""
        if summary is None:
            self.add_counts(page)
            self._set_baseline(page, t, wall)
            return []
        delta = summary.delta
        if summary.reset:
            self.resets += 1
        self.add_counts(delta)
        dt = t - self.last_time if t > self.last_time else 1.0
        self.latest = per_second(delta, summary, dt, self.band_labels if bands else ())
        exceeded = {key: delta[EXCEEDED_COUNTERS[key]] for key in self.scopes}
        self.exceeded_now = {key: us > 0 for key, us in exceeded.items()}
        if any(self.exceeded_now.values()):
            self.exceeded_intervals += 1
        self.peaks.add(t, peak_values(self.latest))
        ended = self.episodes.update(self.last_wall, wall, exceeded, self.latest)
        self._set_baseline(page, t, wall)
        return ended

    def _set_baseline(self, page, t: float, wall: float) -> None:
        self.last_page, self.last_time, self.last_wall = page, t, wall


def per_second(delta, summary, dt: float, band_labels: tuple[str, ...] = ()) -> dict:
    """IOPS, bytes/s, mean and quantile latency (seconds) per op, and per band when given
    the band labels."""
    out: dict = {"dt": dt, "ops": {}, "bands": {}}
    counters = delta.counters
    qs = summary.qs
    for op, op_q in (("read", summary.read_q), ("write", summary.write_q)):
        ops = counters[f"total_{op}_ops"]
        out["ops"][op] = {
            "iops": ops / dt,
            "throughput": counters[f"total_{op}_bytes"] / dt,
            "mean": counters[f"total_{op}_time"] * US / ops if ops else math.nan,
            "quantiles": {q: v * US for q, v in zip(qs, op_q)},
        }
    if band_labels:
        per_op = (("read", summary.band_read_ops, summary.band_read_q),
                  ("write", summary.band_write_ops, summary.band_write_q))
        for i, label in enumerate(band_labels):
            out["bands"][label] = {
                op: {"iops": ops[i] / dt,
                     "quantiles": {q: v * US for q, v in zip(qs, band_q[i])}}
                for op, ops, band_q in per_op
            }
    return out


def peak_values(latest: dict) -> dict:
    values = {}
    for op, v in latest["ops"].items():
        values[("iops", op)] = v["iops"]
        values[("throughput", op)] = v["throughput"]
        for q, seconds in v["quantiles"].items():
            values[("latency", op, q)] = seconds
    return values


class AgentState:
    """Everything shared between the sampler thread and scrapes; guarded by `lock`.

    `version` goes up whenever what a scrape would show changes (a device polled, a tick
    done, a reload), so a rendered exposition can be reused until then."""

    def __init__(self, peak_window: float = 60.0):
        self.lock = threading.Lock()
        self.peak_window = peak_window
        self.devices: dict[str, DeviceState] = {}  # by serial: survives renames
        self.device_errors: dict[tuple[str, str, str, str], int] = {}  # labels + reason
        self.poll_buckets = [0] * (len(POLL_BUCKETS) + 1)
        self.poll_sum = 0.0
        self.poll_count = 0
        self.overruns = 0
        self.ticks = 0
        self.version = 0
        self.host: dict[str, float] = {}
        self.instance = None  # agent.instance.InstanceContext when identity is on
        self.io_size = True
        self.peaks_enabled = True

    def device_state(self, device: Device) -> DeviceState:
        state = self.devices.get(device.serial)
        if state is None or state.device != device:
            state = DeviceState(device, self.peak_window) if state is None else state
            state.device = device
            self.devices[device.serial] = state
        return state

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
