"""Text a person reads at a glance: units people think in, histogram bars, colour on a tty.

Everything here is a pure function of decoded pages and intervals, so golden tests can pin it.
Lines fit an 80-column terminal.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

from nitrometer import native
from nitrometer.logpage import EXCEEDED_COUNTERS, exceeded_limits
from nitrometer.sampling import OPS, Interval
from nitrometer.sampling.interval import exceeded_over_run, hist_quantiles
from nitrometer.sampling.record_json import OPEN_ENDED_FROM_US

LIMIT_NAMES = {"iops": "IOPS", "throughput": "throughput"}
KIND_NAMES = {"ebs": "EBS volume", "instance_store": "instance store"}
BAR_WIDTH = 36
SHOWN_QUANTILES = (0.5, 0.99, 0.999)


@dataclass(frozen=True)
class Style:
    color: bool = False
    bar: str = "#"

    def paint(self, text: str, *codes: str) -> str:
        if not self.color or not codes:
            return text
        return "".join(f"\033[{c}m" for c in codes) + text + "\033[0m"

    def alert(self, text: str) -> str:
        return self.paint(text, "1", "31")

    def dim(self, text: str) -> str:
        return self.paint(text, "2")


def terminal_style(stream=None) -> Style:
    """Colour only on a terminal and never with NO_COLOR set; block bars where UTF-8 works."""
    stream = stream or sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    color = tty and not os.environ.get("NO_COLOR")
    encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
    return Style(color=color, bar="\u2588" if tty and encoding == "utf8" else "#")


# --- units ------------------------------------------------------------------------------

def _us_parts(us: float) -> tuple[str, str]:
    """A latency as (number, unit) with about three significant digits."""
    if us < 1000:
        small = 0 < us < 10 and us != int(us)
        return (f"{us:.1f}" if small else f"{us:.0f}"), "us"
    unit, value = ("s", us / 1e6) if us >= 1e6 else ("ms", us / 1e3)
    if value >= 100:
        return f"{value:.0f}", unit
    return (f"{value:.1f}" if value >= 10 else f"{value:.2f}"), unit


def fmt_us(us: float | None) -> str:
    if us is None or (isinstance(us, float) and math.isnan(us)):
        return "-"
    return "".join(_us_parts(us))


def fmt_range(lower: int, upper: int) -> str:
    """A histogram bin as people say it: 16-32us, 512us-1.02ms, >33.6s."""
    if upper >= OPEN_ENDED_FROM_US:
        return f">{fmt_us(lower)}"
    (lo, lo_unit), (hi, hi_unit) = _us_parts(lower), _us_parts(upper)
    if lower == 0 or lo_unit == hi_unit:
        return f"{lo}-{hi}{hi_unit}"
    return f"{lo}{lo_unit}-{hi}{hi_unit}"


def fmt_rate(value: float) -> str:
    """An ops-per-second figure in four or five characters."""
    for suffix, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            v = value / scale
            return f"{v:.0f}{suffix}" if v >= 100 else f"{v:.1f}{suffix}"
    return f"{value:.0f}"


def fmt_bytes(n: int) -> str:
    for suffix, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n} B"


def fmt_size(nbytes: float | None) -> str:
    """Average request size: 4.0K, 128K, 1.0M; "-" with no IO."""
    if nbytes is None:
        return "-"
    if nbytes >= 1 << 20:
        return f"{nbytes / (1 << 20):.1f}M"
    if nbytes >= 1 << 10:
        kib = nbytes / (1 << 10)
        return f"{kib:.1f}K" if kib < 100 else f"{kib:.0f}K"
    return f"{nbytes:.0f}B"


def fmt_seconds(us: int) -> str:
    return f"{us / 1e6:.2f}s" if us < 10_000_000 else f"{us / 1e6:.1f}s"


def limit_name(scope: str, limit: str) -> str:
    return f"{scope} {LIMIT_NAMES[limit]} limit"


def relevant_limits(kind: str) -> list[tuple[str, str, str]]:
    """Instance-store devices have no volume limits: their volume counters are always 0."""
    return [(scope, limit, EXCEEDED_COUNTERS[scope, limit])
            for scope, limit in exceeded_limits(kind)]


def device_title(device) -> str:
    kind = KIND_NAMES.get(device.kind, device.kind)
    parts = [device.name, kind, device.serial]
    if getattr(device, "bdev", ""):
        parts.append(f"attached as {device.bdev}")
    return "  ".join(p for p in parts if p)


# --- histograms -------------------------------------------------------------------------

def histogram_rows(bins: list[tuple[int, int, int]]) -> list[tuple[str, int]]:
    """(label, count) rows: empty bins at either end dropped, empty runs inside merged."""
    nonzero = [i for i, (_, _, c) in enumerate(bins) if c]
    if not nonzero:
        return []
    rows: list[tuple[str, int]] = []
    i, last = nonzero[0], nonzero[-1]
    while i <= last:
        lower, upper, count = bins[i]
        if count:
            rows.append((fmt_range(lower, upper), count))
            i += 1
            continue
        j = i
        while bins[j + 1][2] == 0:
            j += 1
        rows.append((fmt_range(lower, bins[j][1]), 0))
        i = j + 1
    return rows


def render_histogram(title: str, hist: native.Histogram, style: Style,
                     quantiles: dict | None = None) -> list[str]:
    """`quantiles`: the record's for this histogram (found from it when not given)."""
    total = hist.total
    quantiles = quantiles if quantiles is not None else hist_quantiles(hist, SHOWN_QUANTILES)
    q = [quantiles.get(x) for x in SHOWN_QUANTILES]
    head = (f"  {title}: {total:,} IOs   p50 {fmt_us(q[0])}  p99 {fmt_us(q[1])}"
            f"  p99.9 {fmt_us(q[2])}")
    lines = [style.paint(head, "1")]
    rows = histogram_rows(hist.bins())
    if not rows:
        return lines + ["    (no IO)"]
    peak = max(c for _, c in rows)
    width = max(11, len(f"{peak:,}"))  # counts stay aligned however large they grow
    for label, count in rows:
        if not count:
            lines.append(style.dim(f"  {label:>17} {'':{BAR_WIDTH}} {0:>{width}}"))
            continue
        length = max(1, round(BAR_WIDTH * count / peak))
        bar = style.paint(f"{style.bar * length:<{BAR_WIDTH}}", "36")
        pct = 100 * count / total
        share = f"{pct:5.1f}%" if pct >= 0.1 else " <0.1%"
        lines.append(f"  {label:>17} {bar} {count:>{width},} {share}")
    return lines


# --- the cumulative view ----------------------------------------------------------------

def render_cumulative(device, page: native.Page, style: Style, *, details: bool = False,
                      note: str = "") -> str:
    """A device's page as totals, mean latency, exceeded time, queue and histograms."""
    c = page.counters
    record = Interval.from_page(device, page)
    lines = [style.paint(device_title(device), "1")]
    if note:
        lines.append(f"  {note}")
    lines += ["", f"  {'':6} {'ops':>15} {'bytes':>12} {'mean latency':>14}"]
    for op in OPS:
        st = record.op(op)
        lines.append(f"  {op:6} {st.ops:>15,} {fmt_bytes(st.bytes):>12}"
                     f" {fmt_us(st.mean_us):>14}")
    lines.append("")
    for scope, limit, counter in relevant_limits(page.kind):
        us = c[counter]
        text = f"  exceeded {limit_name(scope, limit):27} {us:>16,}us  {fmt_seconds(us):>8}"
        lines.append(style.alert(text) if us else text)
    lines += [f"  queue length (now) {c['volume_queue_length']:>11,}", ""]
    lines += render_histogram("read latency", page.read, style,
                              record.op("read").quantiles_us) + [""]
    lines += render_histogram("write latency", page.write, style,
                              record.op("write").quantiles_us)
    if details:
        lines += [""] + render_band_table(record, style)
    return "\n".join(lines) + "\n"


def render_band_table(record: Interval, style: Style) -> list[str]:
    if not record.bands:
        return ["  IO-size detail: not reported by this device"]
    width = max([11] + [len(f"{n:,}") for b in record.bands for n in (b.read_ops, b.write_ops)])
    lines = [style.paint(f"  {'IO size':10} {'reads':>{width}} {'p50':>7} {'p99':>7}"
                         f" {'writes':>{width}} {'p50':>7} {'p99':>7}", "1")]
    for band in record.bands:
        cells = [f"{ops:>{width},} {fmt_us(q.get(0.5)):>7} {fmt_us(q.get(0.99)):>7}"
                 for ops, q in ((band.read_ops, band.read_q), (band.write_ops, band.write_q))]
        lines.append(f"  {band.label:10} {' '.join(cells)}")
    return lines


# --- the interval view ------------------------------------------------------------------

COLS = ("IOPS", "MB/s", "avgrq", "mean", "p50", "p99", "p99.9")


def interval_header(stamp: str, style: Style) -> str:
    cells = "".join(f"{c:>8}" for c in COLS)
    return style.paint(f"{stamp:<10}{'op':5}{cells}{'queue':>7}", "1")


def render_interval(iv: Interval, style: Style, *, details: bool = False) -> list[str]:
    exceeded = iv.throttled()
    name = f"{iv.device.name:<10}"
    lines = []
    for op in OPS:
        st = iv.op(op)
        cells = (fmt_rate(st.iops), f"{st.mb_per_s:.1f}", fmt_size(st.avg_request_bytes),
                 fmt_us(st.mean_us),
                 fmt_us(st.p50_us), fmt_us(st.p99_us), fmt_us(st.p999_us))
        queue = f"{iv.queue_length:>7,}" if op == "read" else ""
        label = (style.alert(name) if exceeded else name) if op == "read" else " " * 10
        lines.append(f"{label}{op:5}" + "".join(f"{c:>8}" for c in cells) + queue)
    if iv.reset:
        lines.append(style.paint("  ~ counters restarted on the device: this interval counts "
                                 "from zero", "33"))
    for scope, limit in exceeded:
        over = iv.exceeded[(scope, limit)]
        lines.append(style.alert(f"  ! {limit_name(scope, limit)} exceeded {over.us:,}us, "
                                 f"{100 * over.fraction:.0f}% of {iv.seconds:.2f}s"))
    if details:
        lines += render_band_p99(iv, style)
    return lines


def render_band_p99(iv: Interval, style: Style) -> list[str]:
    bands = iv.bands
    if not bands:
        return []
    head = f"{'':10}{'IO size':10}" + "".join(f"{b.label:>7}" for b in bands)
    lines = [style.dim(head)]
    for op in OPS:
        values = [b.read_p99 if op == "read" else b.write_p99 for b in bands]
        lines.append(f"{'':10}{op + ' p99':10}" + "".join(f"{fmt_us(v):>7}" for v in values))
    return lines


def clock_stamp(wall0: float, offset: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall0 + offset))


def render_tick(intervals: list[Interval], wall0: float, style: Style, *,
                details: bool = False, notes: list[str] = ()) -> str:
    """One interval for every device: a header with the time, then each device's rows, then
    the notes (how close to the limits)."""
    if not intervals:
        return ""
    lines = [interval_header(clock_stamp(wall0, intervals[0].end), style)]
    for iv in intervals:
        lines += render_interval(iv, style, details=details)
    lines += [style.dim(note) for note in notes]
    return "\n".join(lines) + "\n\n"


def worst(intervals: list[Interval]) -> Interval | None:
    """The interval with the most time over a limit; among equals, the slowest p99."""
    def badness(iv: Interval):
        p99 = max((iv.op(op).p99_us or 0.0) for op in OPS)
        return (sum(iv.exceeded_us[k] for k in iv.throttled()), p99)
    return max(intervals, key=badness, default=None)


def render_summary(intervals: list[Interval], wall0: float) -> str:
    """The one line printed when the interval view ends (COUNT reached or Ctrl+C)."""
    if not intervals:
        return "no complete interval"
    bad = worst(intervals)
    over = [(k, bad.exceeded[k]) for k in bad.throttled()]
    if over:
        (scope, limit), most = max(over, key=lambda kv: kv[1].us)
        why = f"{limit_name(scope, limit)}, {most.percent:.0f}%"
    else:
        op = max(OPS, key=lambda o: bad.op(o).p99_us or 0.0)
        why = f"{op} p99 {fmt_us(bad.op(op).p99_us)}"
    over_devices = [f"{name} {fmt_seconds(us)}"
                    for name, (us, counts) in exceeded_over_run(intervals).items() if counts]
    return (f"worst {clock_stamp(wall0, bad.end)} {bad.device.name} ({why}); total exceeded: "
            + (", ".join(over_devices) if over_devices else "none"))
