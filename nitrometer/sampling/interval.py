"""What one device did between two reads, as one immutable record made once in the engine.

This is the one place where a delta becomes a rate per second of device time, where a mean
is taken (null where the time counter went down), where a limit counts as exceeded, and
where a rate is set against the limits the device works under. The agent and every command
render this record; none computes any of it again. `record_json.py` writes it as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


def per_second(count: float, seconds: float | None) -> float | None:
    """The one way a delta becomes a rate: per second of device time; None without a span
    (the cumulative view: totals since the device started have no interval)."""
    return count / seconds if seconds is not None and seconds > 0 else None


def counted(us: int, seconds: float, share: float) -> bool:
    """The one rule for "exceeded" in an interval: at least `share` of it over the limit."""
    return us > 0 and seconds > 0 and us * US >= share * seconds


def _named(qs: tuple[float, ...], values) -> dict[float, float | None]:
    total = sum(values)
    if total == total:  # no NaN (a histogram with IO): the common case, in one step
        return dict(zip(qs, values))
    return {q: nan_to_none(v) for q, v in zip(qs, values)}


def hist_quantiles(hist: native.Histogram, qs: tuple[float, ...] = QUANTILES) -> dict:
    """A histogram's latency quantiles (us); None for each with no IO."""
    if not hist.total:
        return {q: None for q in qs}
    return _named(qs, hist.quantiles(qs))


@dataclass(frozen=True)
class OpStats:
    """One direction (read or write) over an interval; latencies in microseconds. Rates are
    None only where there is no span (cumulative totals)."""

    ops: int
    bytes: int
    time_us: int | None  # None: the time counter went down, so the interval has no measure
    seconds: float | None
    quantiles_us: dict  # quantile -> us or None (no IO)
    iops: float | None = field(init=False)
    throughput: float | None = field(init=False)  # bytes per second
    mean_us: float | None = field(init=False)
    avg_request_bytes: float | None = field(init=False)

    def __post_init__(self):
        put = object.__setattr__
        put(self, "iops", per_second(self.ops, self.seconds))
        put(self, "throughput", per_second(self.bytes, self.seconds))
        put(self, "mean_us", self.time_us / self.ops
            if self.ops and self.time_us is not None else None)
        put(self, "avg_request_bytes", self.bytes / self.ops if self.ops else None)

    @property
    def mb_per_s(self) -> float | None:
        return None if self.throughput is None else self.throughput / 1e6

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
    seconds: float | None

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


@dataclass(frozen=True)
class Exceeded:
    """Time over one limit in an interval, its share of the interval, and whether it counts
    as exceeded (the share rule); share and counted are None without a span."""

    us: int
    fraction: float | None
    percent: float | None
    counted: bool | None


def exceeded_of(delta: native.Page, seconds: float | None,
                share: float) -> dict[tuple[str, str], Exceeded]:
    """Every limit's time over it in a delta page (all four, whatever the device's kind)."""
    out = {}
    span = seconds is not None and seconds > 0
    for key, counter in EXCEEDED_COUNTERS.items():
        us = delta[counter]
        # Time over a limit per second of the interval: its share, and that in percent.
        out[key] = Exceeded(us, per_second(us * US, seconds),
                            per_second(100 * us, seconds * 1e6) if span else None,
                            counted(us, seconds, share) if span else None)
    return out


@dataclass(frozen=True)
class Limits:
    """The limits a device works under, where known: its EBS volume's provisioned IOPS and
    throughput (bytes/s), and the instance's published ones for the device's kind by op
    ("read", "write", "total") -> {"iops": .., "throughput": ..}."""

    volume_type: str = ""
    volume_iops: float | None = None
    volume_throughput: float | None = None
    instance: dict = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return bool(self.volume_iops or self.volume_throughput or self.instance)


@dataclass(frozen=True)
class Headroom:
    """How close a rate ran to one limit: `used` of `bound` (IOPS or bytes/s)."""

    scope: str  # volume | instance
    op: str  # read | write | total
    limit: str  # iops | throughput
    bound: float
    used: float

    @property
    def fraction(self) -> float:
        return self.used / self.bound

    @property
    def percent(self) -> float:
        return 100 * self.used / self.bound


def _op_rates(stats: dict, op: str) -> tuple[float, float]:
    ops = OPS if op == "total" else (op,)
    return (sum(stats[o].iops or 0.0 for o in ops),
            sum(stats[o].throughput or 0.0 for o in ops))


def headroom_of(stats: dict, limits: Limits | None) -> tuple[Headroom, ...]:
    """Each known limit against the rates of the ops it covers."""
    if limits is None or stats["read"].iops is None:
        return ()
    out = []
    iops, tp = _op_rates(stats, "total")
    for limit, bound, used in (("iops", limits.volume_iops, iops),
                               ("throughput", limits.volume_throughput, tp)):
        if bound:
            out.append(Headroom("volume", "total", limit, bound, used))
    for op in ("read", "write", "total"):
        bounds = limits.instance.get(op) or {}
        iops, tp = _op_rates(stats, op)
        for limit, used in (("iops", iops), ("throughput", tp)):
            if bounds.get(limit):
                out.append(Headroom("instance", op, limit, bounds[limit], used))
    return tuple(out)


def combined_headroom(intervals, op: str, bound: float, limit: str) -> Headroom:
    """Several devices of one kind together against the instance's limit for that kind."""
    which = 0 if limit == "iops" else 1
    used = sum(_op_rates(iv.ops, op)[which] for iv in intervals)
    return Headroom("instance", op, limit, bound, used)


def exceeded_over_run(intervals) -> dict[str, tuple[int, bool]]:
    """Per device name: time over its limits summed over a run, and whether that counts as
    exceeded over the run's sampled time (the share rule)."""
    totals: dict[str, list] = {}  # name -> [exceeded us, sampled seconds, share]
    for iv in intervals:
        total = totals.setdefault(iv.device.name, [0, 0.0, iv.share])
        total[0] += sum(iv.exceeded_us.values())
        total[1] += iv.seconds
    return {name: (us, counted(us, seconds, share))
            for name, (us, seconds, share) in totals.items()}


class Interval:
    """A device's delta between two reads, with everything the agent and commands show,
    made once and never changed. `start` and `end` are on the source's clock (monotonic,
    or a recording's time); `seconds` is None for cumulative totals (no interval)."""

    __slots__ = ("device", "start", "seconds", "page", "delta", "share", "reset",
                 "glitches", "confirmed", "dropped", "limits", "ops", "bands", "exceeded",
                 "exceeded_us", "headroom", "queue_length")

    def __init__(self, device, start: float, seconds: float | None, delta: native.Page,
                 page: native.Page, ops: dict, bands: list, *, share: float,
                 reset: bool = False, glitches: tuple = (), confirmed: bool = False,
                 dropped: tuple = (), limits: Limits | None = None):
        put = object.__setattr__
        put(self, "device", device)
        put(self, "start", start)
        put(self, "seconds", seconds)
        put(self, "delta", delta)
        put(self, "page", page)  # the later page: queue length is a point-in-time value
        put(self, "share", share)
        put(self, "reset", reset)
        put(self, "glitches", tuple(glitches))  # fields that went down: no growth for them
        put(self, "confirmed", confirmed)  # commits a page held as implausible, now confirmed
        put(self, "dropped", tuple(dropped))  # fields of a held page that was not confirmed
        put(self, "limits", limits)
        put(self, "ops", ops)
        put(self, "bands", tuple(bands))
        exceeded = exceeded_of(delta, seconds, share)
        put(self, "exceeded", exceeded)
        put(self, "exceeded_us", {key: exceeded[key].us for key in exceeded_limits(device.kind)})
        put(self, "headroom", headroom_of(ops, limits))
        put(self, "queue_length", page["volume_queue_length"])

    def __setattr__(self, name, value):
        raise AttributeError(f"an Interval is immutable ({name})")

    @classmethod
    def from_summary(cls, device, start: float, seconds: float, summary: native.Summary,
                     page: native.Page, share: float = DEFAULT_EXCEEDED_SHARE,
                     limits: Limits | None = None) -> Interval:
        """The engine's record of one committed delta (C core quantiles). The summary may
        be a view of buffers the next poll reuses: the record keeps its own delta, and
        reads each array once."""
        d, qs = summary.delta.copy(), summary.qs
        counters = d.counters
        glitches = summary.glitches
        ops = {}
        for name, q in zip(OPS, (summary.read_q, summary.write_q)):
            time_field = f"total_{name}_time"
            time_us = None if time_field in glitches else counters[time_field]
            ops[name] = OpStats(counters[f"total_{name}_ops"], counters[f"total_{name}_bytes"],
                                time_us, seconds, _named(qs, q))
        bands = [BandStats(low, high, reads, writes, _named(qs, read_q), _named(qs, write_q),
                           seconds)
                 for (low, high), reads, writes, read_q, write_q in zip(
                     d.band_bounds(), summary.band_read_ops, summary.band_write_ops,
                     summary.band_read_q, summary.band_write_q)]
        return cls(device, start, seconds, d, page, ops, bands, share=share,
                   reset=summary.reset, glitches=glitches,
                   confirmed=bool(summary.flags & native.lib.NM_DELTA_CONFIRMED),
                   dropped=summary.dropped, limits=limits)

    @classmethod
    def from_page(cls, device, page: native.Page, seconds: float | None = None, *,
                  start: float = 0.0, share: float = DEFAULT_EXCEEDED_SHARE,
                  qs: tuple[float, ...] = QUANTILES) -> Interval:
        """A page taken as one delta: totals since the device started (no span, so no
        rates), or a recording's first-to-last delta over `seconds`."""
        ops = {name: OpStats(page[f"total_{name}_ops"], page[f"total_{name}_bytes"],
                             page[f"total_{name}_time"], seconds,
                             hist_quantiles(page.read if name == "read" else page.write, qs))
               for name in OPS}
        bands = [BandStats(band.low, band.high, band.read.total, band.write.total,
                           hist_quantiles(band.read, qs), hist_quantiles(band.write, qs),
                           seconds) for band in page.bands]
        return cls(device, start, seconds, page, page, ops, bands, share=share)

    @property
    def end(self) -> float:
        return self.start + (self.seconds or 0.0)

    def op(self, name: str) -> OpStats:
        return self.ops[name]

    def exceeded_fraction(self, key: tuple[str, str]) -> float:
        return self.exceeded[key].fraction or 0.0

    def throttled(self) -> list[tuple[str, str]]:
        """The limits of this device's kind counted as exceeded in this interval."""
        return [key for key in self.exceeded_us if self.exceeded[key].counted]

    def to_json(self, view: str, wall: float, elapsed: float) -> dict:
        from nitrometer.sampling.record_json import interval_json

        return interval_json(self, view, wall, elapsed)
