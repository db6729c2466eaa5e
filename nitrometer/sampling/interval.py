"""What one device did between two reads: counts from the C core, rates, and "exceeded".

This is the one place where a delta becomes per-second rates and where a limit counts as
exceeded, for the agent and every command alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nitrometer import native
from nitrometer.logpage import EXCEEDED_COUNTERS, exceeded_limits

QUANTILES = native.DEFAULT_QUANTILES  # 0.5, 0.9, 0.99, 0.999
OPS = ("read", "write")
# A limit counts as exceeded in an interval when the device spent at least this share of
# it over the limit: 10 ms of a 1 s interval. Less is a brush with the limit, not throttling.
# The exact time stays exported as ec2_nvme_performance_exceeded_seconds_total.
DEFAULT_EXCEEDED_SHARE = 0.01
US = 1e-6


def nan_to_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _named(qs: tuple[float, ...], values) -> dict[float, float | None]:
    return {q: nan_to_none(v) for q, v in zip(qs, values)}


@dataclass(frozen=True)
class OpStats:
    """One direction (read or write) over an interval; latencies in microseconds."""

    ops: int
    bytes: int
    time_us: int | None  # None: the time counter went down, so the interval has no measure
    seconds: float
    quantiles_us: dict  # quantile -> us or None (no IO)

    @property
    def iops(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @property
    def throughput(self) -> float:
        """Bytes per second."""
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.throughput / 1e6

    @property
    def mean_us(self) -> float | None:
        return self.time_us / self.ops if self.ops and self.time_us is not None else None

    @property
    def avg_request_bytes(self) -> float | None:
        return self.bytes / self.ops if self.ops else None

    def quantile_us(self, q: float) -> float | None:
        return self.quantiles_us.get(q)

    @property
    def p50_us(self) -> float | None:
        return self.quantiles_us.get(0.5)

    @property
    def p99_us(self) -> float | None:
        return self.quantiles_us.get(0.99)

    @property
    def p999_us(self) -> float | None:
        return self.quantiles_us.get(0.999)


@dataclass(frozen=True)
class BandStats:
    """One IO-size band over an interval (instance store, version 1 pages)."""

    low: int
    high: int | None  # None: no upper bound
    read_ops: int
    write_ops: int
    read_q: dict  # quantile -> us or None
    write_q: dict
    seconds: float

    @property
    def label(self) -> str:
        """Short column label: <=512, <=4K ... and >32K for the open-ended band."""
        if self.high is None:
            return f">{native.format_size(self.low)}"
        return f"<={native.format_size(self.high)}"

    @property
    def io_size(self) -> str:
        """The band's upper bound as the exporter's io_size label: 512, 4K, max."""
        return native.format_size(self.high)

    @property
    def read_p99(self) -> float | None:
        return self.read_q.get(0.99)

    @property
    def write_p99(self) -> float | None:
        return self.write_q.get(0.99)


def exceeded_us(delta: native.Page, kind: str) -> dict[tuple[str, str], int]:
    """Microseconds over each limit this kind of device has, in a delta page."""
    return {key: delta[EXCEEDED_COUNTERS[key]] for key in exceeded_limits(kind)}


def counted(us: int, seconds: float, share: float) -> bool:
    """The one rule for "exceeded" in an interval: at least `share` of it over the limit."""
    return us > 0 and seconds > 0 and us * US >= share * seconds


class Interval:
    """A device's delta between two reads, with everything the agent and commands show.

    `start` and `end` are on the source's clock (monotonic, or a recording's time)."""

    __slots__ = ("device", "start", "seconds", "summary", "page", "share", "reset",
                 "_ops", "_bands", "_exceeded")

    def __init__(self, device, start: float, seconds: float, summary: native.Summary,
                 page: native.Page, share: float = DEFAULT_EXCEEDED_SHARE):
        self.device = device
        self.start = start
        self.seconds = seconds
        self.summary = summary
        self.page = page  # the later page: queue length is a point-in-time value
        self.share = share
        self.reset = summary.reset
        self._ops: dict[str, OpStats] = {}
        self._bands: list[BandStats] | None = None
        self._exceeded: dict[tuple[str, str], int] | None = None

    @property
    def end(self) -> float:
        return self.start + self.seconds

    @property
    def delta(self) -> native.Page:
        return self.summary.delta

    def op(self, name: str) -> OpStats:
        stats = self._ops.get(name)
        if stats is None:
            d = self.summary.delta
            q = self.summary.read_q if name == "read" else self.summary.write_q
            time_field = f"total_{name}_time"
            time_us = None if time_field in self.summary.glitches else d[time_field]
            stats = self._ops[name] = OpStats(
                d[f"total_{name}_ops"], d[f"total_{name}_bytes"], time_us,
                self.seconds, _named(self.summary.qs, q))
        return stats

    @property
    def exceeded_us(self) -> dict[tuple[str, str], int]:
        """Microseconds over each limit of this device's kind."""
        if self._exceeded is None:
            self._exceeded = exceeded_us(self.summary.delta, self.device.kind)
        return self._exceeded

    def exceeded_fraction(self, key: tuple[str, str]) -> float:
        us = self.exceeded_us.get(key, 0)
        return us * US / self.seconds if self.seconds > 0 else 0.0

    def throttled(self) -> list[tuple[str, str]]:
        """The limits counted as exceeded in this interval (the share rule)."""
        return [key for key, us in self.exceeded_us.items()
                if counted(us, self.seconds, self.share)]

    @property
    def queue_length(self) -> int:
        return self.page["volume_queue_length"]

    @property
    def bands(self) -> list[BandStats]:
        if self._bands is None:
            s = self.summary
            qs = s.qs
            self._bands = [
                BandStats(band.low, band.high, reads, writes,
                          _named(qs, s.band_read_q[i]), _named(qs, s.band_write_q[i]),
                          self.seconds)
                for i, (band, reads, writes) in enumerate(
                    zip(s.delta.bands, s.band_read_ops, s.band_write_ops))
            ]
        return self._bands
