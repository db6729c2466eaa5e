"""The per-device families of /metrics, written from templates.

A device's label sets and bucket bounds go into its lines once, when the device first shows
up or its bin layout or the bucket settings change; a render then writes only the values.
At 32 instance-store devices that is ~3,500 samples, nearly all of them histogram buckets:
those the C core writes, one call per device (nitrometer/render.py).
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from operator import add

from nitrometer import metrics as m
from nitrometer import native
from nitrometer.agent.exposition import (
    Family,
    bucket_affixes,
    counts_text,
    fmt,
    labelstr,
    le_strings,
)
from nitrometer.agent.state import US
from nitrometer.logpage import EXCEEDED_COUNTERS, OPEN_ENDED_US
from nitrometer.render import (
    ALL_BINS,
    READS,
    WRITES,
    HistogramPlan,
    HistogramSpec,
    LineBuffer,
    band_source,
    layout_of,
    layout_signature,
)

LABELS = m.DEVICE_LABELS
COUNTERS = (
    (m.READ_OPS, "total_read_ops", 1, "Read operations completed."),
    (m.WRITE_OPS, "total_write_ops", 1, "Write operations completed."),
    (m.READ_BYTES, "total_read_bytes", 1, "Bytes read."),
    (m.WRITE_BYTES, "total_write_bytes", 1, "Bytes written."),
    (m.READ_TIME, "total_read_time", US, "Time spent on completed reads."),
    (m.WRITE_TIME, "total_write_time", US, "Time spent on completed writes."),
)
QUEUE_COUNTER = "volume_queue_length"
PEAK_FAMILIES = {"iops": 0, "throughput": 1}  # anything else: the p99 latency family
OPS = ("read", "write")


def histogram_spec(source: int, name: str, names: tuple, values: tuple,
                   buckets: Buckets) -> HistogramSpec:
    """One histogram's text around its values, and how many bins each bucket counts."""
    before, after = bucket_affixes(name, names, values)
    labels = labelstr(names, values)
    below = buckets.bins_below if buckets.bins_below is not None else \
        range(1, len(buckets.les))
    return HistogramSpec(source, before, after, f"{name}_count{labels} ",
                         f"{name}_sum{labels} ", zip((*below, ALL_BINS), buckets.les))


class Buckets:
    """How one bin layout becomes the exported buckets: the le texts, and how many of the
    device's bins each cumulative bucket counts. With coarse edges a bin goes into the first
    bucket whose edge is >= its upper bound (as native.merge_bins), so with increasing
    bounds the cumulative bucket of edge e counts the bins with upper <= e: the first
    bins_below[e] of them, read off the bins' running sum."""

    __slots__ = ("les", "bins_below", "edges", "in_order", "plannable")

    def __init__(self, uppers: tuple, edges: tuple | None):
        self.edges = edges
        self.in_order = all(a < b for a, b in zip(uppers, uppers[1:]))
        self.bins_below = None  # None: one bucket per bin
        self.plannable = edges is None or self.in_order  # bins_below says it all
        if edges is None:
            self.les = le_strings(list(uppers)) if uppers else ("+Inf",)
            return
        self.les = le_strings(list(edges) + [OPEN_ENDED_US])
        self.bins_below = tuple(bisect_right(uppers, e) for e in edges)

    def values(self, hist: native.Histogram, counts: list[int]) -> list[int]:
        """Cumulative count of each bucket (counts: the histogram's bins); the last is the
        total."""
        if self.bins_below is None:
            return list(accumulate(counts)) or [0]
        if not self.in_order:  # nothing to read off: the C merge, then the running sum
            return list(accumulate(native.merge_bins(hist, self.edges)))
        running = list(accumulate(counts)) or [0]
        return [running[k - 1] if k else 0 for k in self.bins_below] + [running[-1]]


_BUCKETS: dict[tuple, Buckets] = {}  # layouts seen: a handful


def buckets_of(uppers: tuple, edges: tuple | None) -> Buckets:
    key = (uppers, edges)
    found = _BUCKETS.get(key)
    if found is None:
        found = Buckets(uppers, edges)
        if len(_BUCKETS) < 64:
            _BUCKETS[key] = found
    return found


class DeviceLines:
    """One live device's lines of the per-device families, values left out: its histograms
    as a plan the C core writes them from (or, for a layout the plan cannot express, their
    line prefixes)."""

    def __init__(self, d, latency: tuple, bands: tuple, band_labels: tuple):
        dev = d.device
        self.values = values = (dev.name, dev.serial, dev.kind)
        labels = labelstr(LABELS, values)
        self.counters = tuple((f"{name}{labels} ", key, scale)
                              for name, key, scale, _doc in COUNTERS)
        scoped = LABELS + ("scope", "limit")
        self.scopes = tuple((key, EXCEEDED_COUNTERS[key], labelstr(scoped, values + key))
                            for key in d.scopes)
        self.intervals = f"{m.EXCEEDED_INTERVALS}{labels} "
        self.queue = f"{m.QUEUE_LENGTH}{labels} "
        self.peaks: dict = {}  # peak key -> (family index, line prefix)
        self.latency, self.bands, self.band_labels = latency, bands, band_labels
        # Latency of reads and writes, then each band's reads and writes.
        self.buckets = latency + tuple(b for _label in band_labels for b in bands * 2)
        self.plan: HistogramPlan | None = None
        self.prefixes: list[list[str]] = []  # each histogram's, when written in Python
        if all(b.plannable for b in self.buckets):
            self.plan = HistogramPlan(self.specs(), US, parts=(2,))  # latency | bands
        else:
            self.prefixes = self.python_prefixes()

    def specs(self) -> list[HistogramSpec]:
        names, values = LABELS + ("op",), self.values
        specs = [histogram_spec(op, m.LATENCY, names, values + (OPS[op],), self.latency[op])
                 for op in (READS, WRITES)]
        names += ("io_size",)
        return specs + [histogram_spec(band_source(i, op), m.IO_SIZE_LATENCY, names,
                                       values + (OPS[op], label), self.bands[0])
                        for i, label in enumerate(self.band_labels) for op in (READS, WRITES)]

    def python_prefixes(self) -> list[list[str]]:
        return [[f"{s.before}{le}{s.after}" for _bins, le in s.buckets] + [s.count, s.sum]
                for s in self.specs()]

    def histograms(self, totals: native.Totals, out: LineBuffer | None) -> list[bytes]:
        """The latency histograms' lines, then the bands'."""
        if self.plan is not None and out is not None:
            found = out.render(self.plan, totals)
            if found is not None:
                return found
        if not self.prefixes:  # the plan could not write these totals (a count past 2^64)
            self.prefixes = self.python_prefixes()
        page = totals.page
        hists = [page.read, page.write]
        sums = [page["total_read_time"] * US, page["total_write_time"] * US]
        for band, (read_us, write_us) in zip(page.bands, totals.band_sums_us()):
            hists += (band.read, band.write)
            sums += (read_us * US, write_us * US)
        texts = [histogram_text(prefixes, buckets, hist, sum_value)
                 for prefixes, buckets, hist, sum_value
                 in zip(self.prefixes, self.buckets, hists, sums)]
        return ["".join(texts[:2]).encode(), "".join(texts[2:]).encode()]

    def peak(self, key) -> tuple[int, str]:
        found = self.peaks.get(key)
        if found is None:
            index = PEAK_FAMILIES.get(key[0], 2)
            name = (m.PEAK_IOPS, m.PEAK_THROUGHPUT, m.PEAK_LATENCY_P99)[index]
            found = self.peaks[key] = (index, f"{name}"
                                       f"{labelstr(LABELS + ('op',), self.values + (key[1],))} ")
        return found


def histogram_text(prefixes: list[str], buckets: Buckets, hist: native.Histogram,
                   sum_value: float) -> str:
    """One histogram's lines, written in Python."""
    values = counts_text(buckets.values(hist, hist.counts))
    values += (values[-1], fmt(sum_value) + "\n")
    return "".join(map(add, prefixes, values))


_LAYOUTS: dict[tuple, tuple] = {}  # the same few layouts, one copy each, by signature


def layout_key(d, snap) -> tuple:
    """What a device's templates depend on besides its labels and scopes."""
    signature = (layout_signature(d.totals), d.band_labels, snap.latency_edges, snap.io_size,
                 snap.band_edges)
    found = _LAYOUTS.get(signature)
    if found is None:
        read, write, num_bands, band = layout_of(d.totals)
        found = (read, write, snap.latency_edges)
        n = min(num_bands, len(d.band_labels))
        if snap.io_size and n:
            found += (band, d.band_labels[:n], snap.band_edges)
        if len(_LAYOUTS) < 64:
            _LAYOUTS[signature] = found
    return found


class DeviceRenderer:
    """The per-device families of each render; keeps the templates of the devices it saw
    last time. in_c=False writes every histogram in Python (the C core's reference)."""

    def __init__(self, in_c: bool = True):
        self._lines: dict[tuple, DeviceLines] = {}
        self._out = LineBuffer() if in_c else None

    def c_bytes(self) -> int:
        """Memory held in C (plans' arrays, the line buffer): what tracemalloc misses."""
        plans = sum(lines.plan.c_bytes for lines in self._lines.values() if lines.plan)
        return plans + (self._out.c_bytes if self._out is not None else 0)

    def lines_of(self, d, snap, seen: dict) -> DeviceLines:
        key = (d.device.name, d.device.serial, d.device.kind, d.scopes, layout_key(d, snap))
        lines = self._lines.get(key)
        if lines is None:
            read_uppers, write_uppers, edges, *band_layout = key[-1]
            latency = (buckets_of(read_uppers, edges), buckets_of(write_uppers, edges))
            if band_layout:
                band_uppers, band_labels, band_edges = band_layout
                lines = DeviceLines(d, latency, (buckets_of(band_uppers, band_edges),),
                                    band_labels)
            else:
                lines = DeviceLines(d, latency, (), ())
        seen[key] = lines
        return lines

    def families(self, snap) -> list[Family]:
        devices = sorted(snap.devices, key=lambda d: d.device.name)
        live = [d for d in devices if d.live]
        counters = [Family(name, "counter", doc + " Monotonic across device counter resets.")
                    for name, _key, _scale, doc in COUNTERS]
        exceeded = Family(m.EXCEEDED_SECONDS, "counter", "Time the volume or instance ran "
                          "past its IOPS or throughput limit.")
        episodes = Family(m.EXCEEDED_EPISODES, "counter", "Ended episodes of the limit "
                          "exceeded (runs of exceeded intervals).")
        now = Family(m.EXCEEDED_NOW, "gauge", "1 if the limit was exceeded for at least "
                     "exceeded.min-share of the last interval.")
        intervals = Family(m.EXCEEDED_INTERVALS, "counter", "Poll intervals in which a limit "
                           "was exceeded for at least exceeded.min-share of the interval.")
        queue = Family(m.QUEUE_LENGTH, "gauge", "Outstanding IOs at the last poll.")
        latency = Family(m.LATENCY, "histogram", "IO latency, from the device's histogram "
                         "bins; _sum is the device's total time.", binary=True)
        bands = Family(m.IO_SIZE_LATENCY, "histogram", "IO latency per IO-size band (upper "
                       "bound in io_size); _sum estimated from bin midpoints.", binary=True)
        window = f" over the last {snap.peak_window:g}s."
        peaks = (Family(m.PEAK_IOPS, "gauge", "Highest 1-interval IOPS" + window),
                 Family(m.PEAK_THROUGHPUT, "gauge", "Highest 1-interval throughput" + window),
                 Family(m.PEAK_LATENCY_P99, "gauge", "Highest 1-interval p99 latency" + window))
        seen: dict = {}
        for d in live:
            lines = self.lines_of(d, snap, seen)
            c = d.totals.page.counters
            for fam, (prefix, key, scale) in zip(counters, lines.counters):
                value = c[key]
                fam.lines.append(prefix + fmt(value * scale if scale != 1 else value) + "\n")
            for key, counter, labels in lines.scopes:
                exceeded.lines.append(f"{exceeded.name}{labels} {fmt(c[counter] * US)}\n")
                episodes.lines.append(f"{episodes.name}{labels} "
                                      f"{fmt(d.episodes.get(key, 0))}\n")
                now.lines.append(f"{now.name}{labels} "
                                 f"{'1.0' if d.exceeded_now.get(key) else '0.0'}\n")
            intervals.lines.append(lines.intervals + fmt(d.exceeded_intervals) + "\n")
            queue.lines.append(lines.queue + fmt(c[QUEUE_COUNTER]) + "\n")
            latency_text, bands_text = lines.histograms(d.totals, self._out)
            latency.lines.append(latency_text)
            bands.lines.append(bands_text)
            for key, value in sorted(d.peaks.items(), key=lambda kv: str(kv[0])):
                index, prefix = lines.peak(key)
                peaks[index].lines.append(prefix + fmt(value) + "\n")
        self._lines = seen  # devices gone, or with another layout, are dropped
        out = counters + [exceeded, episodes, now, intervals, queue, latency]
        if snap.io_size:
            out.append(bands)
        if snap.peaks_enabled:
            out += peaks
        return out + identity_families(devices)
def identity_families(devices) -> list[Family]:
    """Every device's identity, health and counts, live or not: a few lines each."""
    info = Family(m.DEVICE_INFO, "gauge", "Device identity; value 1.")
    up = Family(m.DEVICE_UP, "gauge", "1 if the last read of the device succeeded.")
    resets = Family(m.COUNTER_RESETS, "counter", "Times the device restarted its counters.")
    layouts = Family(m.LAYOUT_CHANGES, "counter", "Times the device's histogram layout "
                     "changed (a new baseline; that interval is not counted).")
    glitches = Family(m.GLITCHES, "counter", "Intervals in which one field went down while "
                      "the device kept counting (that field got no growth).")
    count_by_kind: dict[str, int] = {kind: 0 for kind in ("ebs", "instance_store")}
    volume_iops = Family(m.VOLUME_IOPS_LIMIT, "gauge", "The EBS volume's provisioned (or "
                         "baseline) IOPS.")
    volume_tp = Family(m.VOLUME_THROUGHPUT_LIMIT, "gauge", "The EBS volume's provisioned "
                       "throughput.")
    info_names = LABELS + ("model", "bdev", "firmware", "controller", "page_version",
                           "volume_id", "volume_type")
    for d in devices:
        dev = d.device
        values = (dev.name, dev.serial, dev.kind)
        labels = labelstr(LABELS, values)
        ebs = dev.kind == "ebs"
        volume_type = d.volume.volume_type if d.volume is not None else ""
        info.add(labelstr(info_names, values + (
            dev.model, dev.bdev, dev.firmware, dev.controller, str(d.version),
            dev.serial if ebs else "", volume_type)), 1)
        if ebs and d.volume is not None:
            if d.volume.iops:
                volume_iops.add(labels, d.volume.iops)
            if d.volume.throughput:
                volume_tp.add(labels, d.volume.throughput)
        up.add(labels, 1.0 if d.up else 0.0)
        resets.add(labels, d.resets)
        layouts.add(labels, d.layout_changes)
        for name, count in sorted(d.glitches.items()):
            glitches.add(labelstr(LABELS + ("field",), values + (name,)), count)
        count_by_kind[dev.kind] = count_by_kind.get(dev.kind, 0) + 1
    seen = Family(m.DEVICES, "gauge", "Devices being polled.")
    for kind, count in sorted(count_by_kind.items()):
        seen.add(labelstr(("kind",), (kind,)), count)
    return [info, volume_iops, volume_tp, up, resets, layouts, glitches, seen]
