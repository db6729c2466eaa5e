"""What the sampler knows and the exporter serves: per-device totals, latest values, peaks.

Every exported counter is the agent's own running total of the deltas the C core computed,
so a device resetting its counters or a u32 bin wrapping never makes one go down.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

from nitrometer.agent.events import EpisodeTracker
from nitrometer.collectors.base import KIND_INSTANCE_STORE, Device
from nitrometer.logpage import OPEN_ENDED_US

US = 1e-6
OPS = ("read", "write")
QUANTILES = (0.5, 0.9, 0.99, 0.999)
# (scope, limit) -> the page counter holding microseconds over that limit.
EXCEEDED_COUNTERS = {
    ("volume", "iops"): "ebs_volume_performance_exceeded_iops",
    ("volume", "throughput"): "ebs_volume_performance_exceeded_tp",
    ("instance", "iops"): "ec2_instance_performance_exceeded_iops",
    ("instance", "throughput"): "ec2_instance_performance_exceeded_tp",
}
POLL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def exceeded_scopes(kind: str) -> tuple[tuple[str, str], ...]:
    """Instance-store devices have no volume limit; EBS volumes have both."""
    if kind == KIND_INSTANCE_STORE:
        return tuple(k for k in EXCEEDED_COUNTERS if k[0] == "instance")
    return tuple(EXCEEDED_COUNTERS)


class HistTotals:
    """Cumulative bin counts keyed by the bin's upper bound (us), plus the sum in seconds."""

    __slots__ = ("counts", "lowers", "sum_seconds")

    def __init__(self):
        self.counts: dict[int, int] = {}
        self.lowers: dict[int, int] = {}
        self.sum_seconds = 0.0

    def add(self, hist, *, estimate_sum: bool = False) -> None:
        for lower, upper, count in hist.bins():
            self.counts[upper] = self.counts.get(upper, 0) + count
            self.lowers[upper] = lower
            if estimate_sum and count:
                # No per-band time on the page: each IO counts at its bin's midpoint.
                mid = lower if upper >= OPEN_ENDED_US else (lower + upper) / 2
                self.sum_seconds += count * mid * US

    def buckets(self) -> list[tuple[str, int]]:
        """Cumulative (le, count) pairs; the last bin is open ended, so it becomes +Inf."""
        out, running = [], 0
        uppers = sorted(self.counts)
        for i, upper in enumerate(uppers):
            running += self.counts[upper]
            le = "+Inf" if i == len(uppers) - 1 else _le(upper * US)
            out.append((le, running))
        if not out:
            out.append(("+Inf", 0))
        return out


def _le(seconds: float) -> str:
    return repr(float(seconds))


class PeakWindow:
    """Maximum of each per-second value over the last `window` seconds."""

    def __init__(self, window: float):
        self.window = window
        self.entries: deque[tuple[float, dict]] = deque()

    def add(self, t: float, values: dict) -> None:
        self.entries.append((t, {k: v for k, v in values.items() if not math.isnan(v)}))
        while self.entries and self.entries[0][0] <= t - self.window:
            self.entries.popleft()

    def peaks(self) -> dict:
        out: dict = {}
        for _t, values in self.entries:
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
    totals: dict[str, int] = field(default_factory=dict)
    queue_length: int = 0
    hists: dict[str, HistTotals] = field(default_factory=lambda: {op: HistTotals() for op in OPS})
    bands: dict[str, dict[str, HistTotals]] = field(default_factory=dict)
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
        return exceeded_scopes(self.device.kind)

    def add_counts(self, page, *, bands: bool) -> None:
        """Add a delta page (or the first page, counted from the device's own zero)."""
        for name, value in page.counters.items():
            if name == "volume_queue_length":
                self.queue_length = value
            else:
                self.totals[name] = self.totals.get(name, 0) + value
        self.hists["read"].add(page.read)
        self.hists["write"].add(page.write)
        self.hists["read"].sum_seconds = self.totals["total_read_time"] * US
        self.hists["write"].sum_seconds = self.totals["total_write_time"] * US
        if bands:
            for band in page.bands:
                per_op = self.bands.setdefault(band.label, {op: HistTotals() for op in OPS})
                per_op["read"].add(band.read, estimate_sum=True)
                per_op["write"].add(band.write, estimate_sum=True)

    def observe(self, page, summary, t: float, wall: float, *, bands: bool) -> list:
        """Fold one poll in; returns the exceeded episodes that ended with it."""
        if summary is None:
            self.add_counts(page, bands=bands)
            self._set_baseline(page, t, wall)
            return []
        delta = summary.delta
        if summary.reset:
            self.resets += 1
        self.add_counts(delta, bands=bands)
        dt = t - self.last_time if t > self.last_time else 1.0
        self.latest = per_second(delta, summary, dt, bands=bands)
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


def per_second(delta, summary, dt: float, *, bands: bool) -> dict:
    """IOPS, bytes/s, mean and quantile latency (seconds) per op, and per band when asked."""
    out: dict = {"dt": dt, "ops": {}, "bands": {}}
    quantiles = {"read": summary.read_q, "write": summary.write_q}
    for op in OPS:
        ops = delta[f"total_{op}_ops"]
        out["ops"][op] = {
            "iops": ops / dt,
            "throughput": delta[f"total_{op}_bytes"] / dt,
            "mean": delta[f"total_{op}_time"] * US / ops if ops else math.nan,
            "quantiles": {q: v * US for q, v in zip(summary.qs, quantiles[op], strict=False)},
        }
    if bands:
        for i, band in enumerate(delta.bands):
            out["bands"][band.label] = {
                op: {"iops": hist.total / dt,
                     "quantiles": {q: v * US for q, v in zip(summary.qs, qs[i], strict=False)}}
                for op, hist, qs in (("read", band.read, summary.band_read_q),
                                     ("write", band.write, summary.band_write_q))
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
    """Everything shared between the sampler thread and scrapes; guarded by `lock`."""

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
