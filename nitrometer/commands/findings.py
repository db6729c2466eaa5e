"""What diagnose concludes from a window of one-second intervals, in plain words.

Rules, in order, per device:
1. a limit was exceeded (which scope and limit, for how many seconds);
2. IO-size interference: small reads slowed far past the read baseline while large writes
   back up (instance store, from the IO-size bands);
3. only when neither explains it: latency outliers or a queue building up, with every
   limit respected (busy, not throttled).
Thresholds are named below so the reasoning is visible and testable.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from nitrometer import devicecore, native
from nitrometer.commands.view import fmt_rate, fmt_us, limit_name, relevant_limits
from nitrometer.sampling import OPS, QUANTILES, Interval, nan_to_none

# Read latency an idle-to-moderately loaded device should stay under at p99 (us). The
# baseline is the lower of this and what the quietest seconds of the window showed.
READ_REFERENCE_US = {"instance_store": 250.0, "ebs": 2000.0}
SMALL_READ_MAX_BYTES = 4096  # bands (0, 512] and (512, 4K]
LARGE_WRITE_MIN_BYTES = 8192  # bands above 8K
INTERFERENCE_FACTOR = 4.0  # small-read p99 at least this many times the baseline...
INTERFERENCE_FLOOR_US = 1000.0  # ...and at least 1 ms
MIN_BAND_SHARE = 0.01  # a band must carry 1 % of its direction's IO to count
OUTLIER_FACTOR = 5.0  # a second whose p99 is 5x the window's typical p99...
OUTLIER_FLOOR_US = {"instance_store": 2000.0, "ebs": 10000.0}  # ...and above this
MIN_OUTLIER_SECONDS = 2
QUEUE_DEEP = 32  # outstanding IO the median second must reach to call it a build-up
# The verdict says the time over a limit in tenths of a second: a total that would read
# "0.0 s" is not a finding (and does not make diagnose exit 1).
MIN_EXCEEDED_US = 50_000


@dataclass
class Finding:
    kind: str  # limit_exceeded | io_size_interference | latency_outliers | queue_buildup
    title: str
    detail: str
    advice: str
    numbers: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "title": self.title, "detail": self.detail,
                "advice": self.advice, **self.numbers}


class WindowTotal:
    """Every interval of a window added up (in C, so resets and layout changes add up
    right), with its p99s."""

    def __init__(self, intervals: list[Interval]):
        totals = devicecore.Totals()
        for iv in intervals:
            totals.add(iv.delta)
        self.delta = totals.page

    @staticmethod
    def _p99(hist) -> float | None:
        return nan_to_none(hist.quantiles(QUANTILES)[QUANTILES.index(0.99)]) \
            if hist.total else None

    def p99(self, op: str) -> float | None:
        return self._p99(self.delta.read if op == "read" else self.delta.write)

    def band_p99(self, i: int, op: str) -> float | None:
        band = self.delta.bands[i]
        return self._p99(band.read if op == "read" else band.write)


@dataclass
class Window:
    """One device's sample: every interval, and their sum."""

    device: object
    intervals: list[Interval]
    _total: WindowTotal | None = field(default=None, repr=False)

    @property
    def total(self) -> WindowTotal:
        if self._total is None:
            self._total = WindowTotal(self.intervals)
        return self._total

    @property
    def seconds(self) -> float:
        return sum(iv.seconds for iv in self.intervals)

    def p99(self, op: str) -> float | None:
        return self.total.p99(op)

    def peak(self, attr) -> float:
        return max((attr(iv) for iv in self.intervals), default=0.0)


def analyze(window: Window) -> list[Finding]:
    if not window.intervals:
        return []
    found = limit_findings(window)
    found += interference_findings(window)
    if not found:
        found += busy_findings(window)
    return found


# --- rule 1: limits ---------------------------------------------------------------------

WHAT = {"iops": "more IO operations per second", "throughput": "more throughput (MB/s)"}


def _advice(kind: str, scope: str, limit: str) -> str:
    if scope == "volume":
        if limit == "iops":
            return ("Give the volume more provisioned IOPS (modify it to a higher gp3 or io2 "
                    "IOPS setting), or spread the data over more volumes.")
        return ("Give the volume more provisioned throughput (modify a gp3 volume's "
                "throughput, or use a volume type with higher throughput).")
    what = "EBS" if kind == "ebs" else "instance store"
    unit = "IOPS" if limit == "iops" else "throughput"
    return (f"Use a larger instance size, or another instance type with more {what} {unit}; "
            "or spread the IO out so it stays under the limit.")


def limit_findings(w: Window) -> list[Finding]:
    out = []
    kind = w.device.kind
    total_seconds = w.seconds
    for scope, limit, _ in relevant_limits(kind):
        key = (scope, limit)
        hit = [iv for iv in w.intervals if key in iv.throttled()]
        if not hit:
            continue
        total_us = sum(iv.exceeded_us[key] for iv in hit)
        if total_us < MIN_EXCEEDED_US:
            continue
        holder = ("this volume's provisioned" if scope == "volume"
                  else f"the instance type's {'EBS' if kind == 'ebs' else 'instance-store'}")
        peak_iops = w.peak(lambda iv: iv.op("read").iops + iv.op("write").iops)
        peak_mbs = w.peak(lambda iv: iv.op("read").mb_per_s + iv.op("write").mb_per_s)
        queue = max(iv.queue_length for iv in w.intervals)
        detail = (
            f"For {total_us / 1e6:.1f} s in total the workload asked for {WHAT[limit]} than "
            f"{holder} limit allows, so EC2 held IO back. Held-back IO waits: it shows as "
            f"latency (reads p99 {fmt_us(w.p99('read'))}, writes p99 {fmt_us(w.p99('write'))}"
            f" over the window) and as queueing (queue length up to {queue}). Busiest second: "
            f"{fmt_rate(peak_iops)} IOPS, {peak_mbs:.1f} MB/s."
        )
        out.append(Finding(
            "limit_exceeded",
            f"{limit_name(scope, limit)} exceeded in {len(hit)} of {total_seconds:.0f} s",
            detail, _advice(kind, scope, limit),
            {"scope": scope, "limit": limit, "seconds": len(hit),
             "window_s": round(total_seconds, 3), "exceeded_us": total_us,
             "peak_iops": round(peak_iops, 1), "peak_mb_per_s": round(peak_mbs, 3)},
        ))
    return out


# --- rule 2: IO-size interference -------------------------------------------------------

def _size(size: int | None) -> str:
    if size is None:
        return "max"
    text = native.format_size(size)
    return text + "iB" if text[-1] in "KM" else f"{text}B" if size else "0"


def _band_range(band) -> str:
    """The EC2 guide's notation: (512B, 4KiB]."""
    return f"({_size(band.low)}, {_size(band.high)}]"


def read_baseline(w: Window, small: list[int]) -> float:
    """The quietest tenth of the window's seconds for small reads, capped by the reference."""
    per_second = []
    for iv in w.intervals:
        values = [iv.bands[i].read_p99 for i in small
                  if i < len(iv.bands) and iv.bands[i].read_p99 is not None]
        if values:
            per_second.append(max(values))
    reference = READ_REFERENCE_US.get(w.device.kind, 2000.0)
    if not per_second:
        return reference
    per_second.sort()
    return min(reference, per_second[len(per_second) // 10])


def interference_findings(w: Window) -> list[Finding]:
    delta = w.total.delta
    if not delta.bands:
        return []
    bands = delta.bands
    reads_total = max(delta["total_read_ops"], 1)
    writes_total = max(delta["total_write_ops"], 1)
    small = [i for i, b in enumerate(bands)
             if b.high is not None and b.high <= SMALL_READ_MAX_BYTES
             and b.read.total >= MIN_BAND_SHARE * reads_total]
    large = [i for i, b in enumerate(bands)
             if b.low >= LARGE_WRITE_MIN_BYTES and b.write.total >= MIN_BAND_SHARE * writes_total]
    if not small or not large:
        return []
    baseline = read_baseline(w, small)
    threshold = max(INTERFERENCE_FACTOR * baseline, INTERFERENCE_FLOOR_US)
    slow = [i for i in small if (w.total.band_p99(i, "read") or 0) >= threshold]
    if not slow:
        return []
    read_p99 = {_band_range(bands[i]): w.total.band_p99(i, "read") for i in slow}
    write_p99 = {_band_range(bands[i]): w.total.band_p99(i, "write") for i in large}
    worst = max(read_p99.values())
    reads = ", ".join(f"{k} p99 {fmt_us(v)}" for k, v in read_p99.items())
    writes = ", ".join(f"{k} p99 {fmt_us(v)}" for k, v in write_p99.items())
    detail = (
        f"Small reads ({reads}) ran {worst / baseline:.0f}x slower than the read baseline "
        f"of {fmt_us(baseline)} while large writes ({writes}) were in flight: the large "
        "writes occupy the device and the small reads wait behind them."
    )
    return [Finding(
        "io_size_interference",
        f"small reads slowed by large writes (read p99 {fmt_us(worst)} vs "
        f"baseline {fmt_us(baseline)})",
        detail,
        "Use smaller writes, or batch the large writes so they do not overlap the "
        "latency-sensitive reads.",
        {"read_baseline_us": round(baseline, 1),
         "slow_read_bands": [{"band": k, "p99_us": v} for k, v in read_p99.items()],
         "large_write_bands": [{"band": k, "p99_us": v} for k, v in write_p99.items()]},
    )]


# --- rule 3: busy, not throttled --------------------------------------------------------

def busy_findings(w: Window) -> list[Finding]:
    out = []
    kind = w.device.kind
    floor = OUTLIER_FLOOR_US.get(kind, 10000.0)
    for op in OPS:
        p99s = [iv.op(op).p99_us for iv in w.intervals if iv.op(op).p99_us is not None]
        if len(p99s) < 3:
            continue
        typical = statistics.median(p99s)
        limit = max(OUTLIER_FACTOR * typical, floor)
        outliers = [v for v in p99s if v >= limit]
        if len(outliers) < MIN_OUTLIER_SECONDS:
            continue
        out.append(Finding(
            "latency_outliers",
            f"{op} latency outliers in {len(outliers)} of {len(p99s)} s, no limit exceeded",
            f"In {len(outliers)} seconds the {op} p99 reached up to {fmt_us(max(outliers))}, "
            f"against a typical {fmt_us(typical)}. No IOPS or throughput limit was "
            "exceeded: the device is busy, not throttled.",
            "Look at what issued the IO in those seconds (bursts, compaction, backups); "
            "spread it out or lower its queue depth.",
            {"op": op, "seconds": len(outliers), "typical_p99_us": round(typical, 1),
             "max_p99_us": round(max(outliers), 1)},
        ))
    queues = [iv.queue_length for iv in w.intervals]
    median_queue = statistics.median(queues)
    if median_queue >= QUEUE_DEEP:
        out.append(Finding(
            "queue_buildup",
            f"queue build-up (median {median_queue:g}, up to {max(queues)}), no limit exceeded",
            f"IO waited in the device queue: a median of {median_queue:g} and up to "
            f"{max(queues)} outstanding requests per second, with reads p99 "
            f"{fmt_us(w.p99('read'))} and writes p99 {fmt_us(w.p99('write'))}. No limit was "
            "exceeded: the device is busy, not throttled.",
            "Lower the queue depth the application keeps, or spread the IO over more devices.",
            {"median_queue_length": median_queue, "max_queue_length": max(queues)},
        ))
    return out
