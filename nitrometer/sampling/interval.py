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
from nitrometer.logpage import COUNTERS, EXCEEDED_COUNTERS, exceeded_limits
from nitrometer.sampling.limits import (  # noqa: F401 (the record's limits, imported from here)
    Headroom,
    Limits,
    combined_headroom,
    headroom_of,
)

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
    return {q: None if v != v else v for q, v in zip(qs, values)}  # NaN: no IO


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
        self.__dict__.update(_op_fields(self.ops, self.bytes, self.time_us, self.seconds,
                                        self.quantiles_us))

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


def _op_fields(ops: int, nbytes: int, time_us: int | None, seconds: float | None,
               quantiles_us: dict) -> dict:
    """Every field of an OpStats: its counts, and the rates and means they give."""
    return {"ops": ops, "bytes": nbytes, "time_us": time_us, "seconds": seconds,
            "quantiles_us": quantiles_us, "iops": per_second(ops, seconds),
            "throughput": per_second(nbytes, seconds),
            "mean_us": time_us / ops if ops and time_us is not None else None,
            "avg_request_bytes": nbytes / ops if ops else None}


def _op_stats(ops: int, nbytes: int, time_us: int | None, seconds: float | None,
              quantiles_us: dict) -> OpStats:
    """OpStats(...) without the frozen dataclass's __init__ (a setattr per field): the
    engine makes two per device per poll."""
    stats = object.__new__(OpStats)
    object.__setattr__(stats, "__dict__", _op_fields(ops, nbytes, time_us, seconds,
                                                     quantiles_us))
    return stats


_COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}
_READ_OPS, _READ_BYTES, _READ_TIME, _WRITE_OPS, _WRITE_BYTES, _WRITE_TIME = (
    _COUNTER_INDEX[f"total_{op}_{what}"] for op in OPS for what in ("ops", "bytes", "time"))
_KIND_LIMITS: dict[str, tuple] = {}


def _kind_limits(kind: str) -> tuple[tuple[tuple[str, str], int], ...]:
    """The limits a device of this kind can exceed, each with its counter's index."""
    limits = _KIND_LIMITS.get(kind)
    if limits is None:
        limits = _KIND_LIMITS[kind] = tuple(
            (key, _COUNTER_INDEX[EXCEEDED_COUNTERS[key]]) for key in exceeded_limits(kind))
    return limits


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


class _Built:
    """A record's field built on first access, then kept in the record's __dict__ (which a
    non-data descriptor gives way to): a field the constructor set is never built."""

    __slots__ = ("build", "name")

    def __init__(self, build):
        self.build = build

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, iv, owner=None):
        if iv is None:
            return self
        value = iv.__dict__[self.name] = self.build(iv)
        return value


# -- fields built on first access, from the record's own copy of the C buffers ------------

def _ops(iv: Interval) -> dict[str, OpStats]:
    summary, counters, seconds = iv._summary, iv._counters, iv.seconds
    read_q, write_q = summary.op_quantiles()
    read_time, write_time = counters[_READ_TIME], counters[_WRITE_TIME]
    if summary.flags & native.lib.NM_DELTA_GLITCH:  # a time that went down has no measure
        glitches = iv.glitches
        read_time = None if "total_read_time" in glitches else read_time
        write_time = None if "total_write_time" in glitches else write_time
    return {"read": _op_stats(counters[_READ_OPS], counters[_READ_BYTES], read_time, seconds,
                              _named(summary.qs, read_q)),
            "write": _op_stats(counters[_WRITE_OPS], counters[_WRITE_BYTES], write_time,
                               seconds, _named(summary.qs, write_q))}


def _bands(iv: Interval) -> tuple[BandStats, ...]:
    summary, seconds = iv._summary, iv.seconds
    qs = summary.qs
    return tuple(BandStats(low, high, reads, writes, _named(qs, read_q), _named(qs, write_q),
                           seconds)
                 for (low, high), reads, writes, read_q, write_q in zip(
                     iv.delta.band_bounds(), summary.band_read_ops, summary.band_write_ops,
                     summary.band_read_q, summary.band_write_q))


def _throttled(iv: Interval) -> tuple[tuple[str, str], ...]:
    seconds, share = iv.seconds, iv.share
    if seconds is None or seconds <= 0:
        return ()
    return tuple(key for key, us in iv.exceeded_us.items() if counted(us, seconds, share))


class Interval:
    """A device's delta between two reads, with everything the agent and commands show,
    made once and never changed. `start` and `end` are on the source's clock (monotonic,
    or a recording's time); `seconds` is None for cumulative totals (no interval).

    The engine makes one a poll per device and the agent reads few of its fields, so a
    record from the C core holds its own copy of the page and summary, and builds the rest
    (_Built: bands, quantiles, exceeded shares, headroom, flags) from that copy when first
    asked: later polls reuse the C buffers, never this record's copy."""

    ops = _Built(_ops)
    bands = _Built(_bands)
    delta = _Built(lambda iv: iv._summary.delta)
    reset = _Built(lambda iv: iv._summary.reset)
    glitches = _Built(lambda iv: iv._summary.glitches)  # fields that went down: no growth
    # Commits a page held as implausible, now confirmed.
    confirmed = _Built(lambda iv: bool(iv._summary.flags & native.lib.NM_DELTA_CONFIRMED))
    dropped = _Built(lambda iv: iv._summary.dropped)  # fields of a held page not confirmed
    exceeded = _Built(lambda iv: exceeded_of(iv.delta, iv.seconds, iv.share))
    exceeded_us = _Built(lambda iv: {key: iv.exceeded[key].us
                                     for key in exceeded_limits(iv.device.kind)})
    headroom = _Built(lambda iv: headroom_of(iv.ops, iv.limits))
    # Of the later page: queue length is a point-in-time value.
    queue_length = _Built(lambda iv: iv.page["volume_queue_length"])
    _throttled = _Built(_throttled)

    def __init__(self, device, start: float, seconds: float | None, delta: native.Page,
                 page: native.Page, ops: dict, bands: list, *, share: float,
                 reset: bool = False, glitches: tuple = (), confirmed: bool = False,
                 dropped: tuple = (), limits: Limits | None = None):
        object.__setattr__(self, "__dict__", {
            "device": device, "start": start, "seconds": seconds, "delta": delta,
            "page": page, "share": share, "reset": reset, "glitches": tuple(glitches),
            "confirmed": confirmed, "dropped": tuple(dropped), "limits": limits,
            "ops": ops, "bands": tuple(bands)})

    def __setattr__(self, name, value):
        raise AttributeError(f"an Interval is immutable ({name})")

    @classmethod
    def from_summary(cls, device, start: float, seconds: float, summary: native.Summary,
                     page: native.Page, share: float = DEFAULT_EXCEEDED_SHARE,
                     limits: Limits | None = None) -> Interval:
        """The engine's record of one committed delta (C core quantiles). The summary and
        page are the record's own (devicecore.Device.committed): its fields are built from
        them, the costly ones when first asked for."""
        self = cls.__new__(cls)
        counters = summary.counter_values()
        object.__setattr__(self, "__dict__", {
            "device": device, "start": start, "seconds": seconds, "page": page,
            "share": share, "limits": limits, "_summary": summary, "_counters": counters,
            "exceeded_us": {key: counters[i] for key, i in _kind_limits(device.kind)}})
        return self

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
        return list(self._throttled)

    def to_json(self, view: str, wall: float, elapsed: float) -> dict:
        from nitrometer.sampling.record_json import interval_json

        return interval_json(self, view, wall, elapsed)
