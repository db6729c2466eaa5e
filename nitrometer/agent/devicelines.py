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

from nitrometer import devicecore, native
from nitrometer import metrics as m
from nitrometer.agent.exposition import (
    Family,
    bucket_affixes,
    counts_text,
    fmt,
    labelstr,
    le_strings,
)
from nitrometer.agent.identitylines import identity_families
from nitrometer.agent.state import US
from nitrometer.logpage import COUNTERS as PAGE_COUNTERS
from nitrometer.logpage import EXCEEDED_COUNTERS, OPEN_ENDED_US
from nitrometer.render import (
    ALL_BINS,
    COUNT,
    END,
    READS,
    SCALED,
    VALUE,
    WRITES,
    DevicePlan,
    HistogramSpec,
    Line,
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
    """One live device's lines of the per-device families, values left out: a plan the C
    core writes them from for each set of peaks the device has (or, for a layout the plan
    cannot express, the histograms' line prefixes)."""

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
        self.plannable = all(b.plannable for b in self.buckets)
        self.plans: dict[tuple, tuple[DevicePlan, tuple]] = {}  # by the peaks' keys
        self.prefixes: list[list[str]] = []  # each histogram's, when written in Python
        if not self.plannable:
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

    def plan_of(self, peak_keys: tuple) -> tuple[DevicePlan, tuple]:
        """The plan for a device with these peaks (in the order found), and the order its
        peak values go in."""
        found = self.plans.get(peak_keys)
        if found is None:
            order = tuple(sorted(peak_keys, key=str))
            found = self.plans.get(order)  # the same peaks, found in another order
            if found is None:
                found = (self.make_plan(order), order)
            if len(self.plans) < 16:
                self.plans[peak_keys] = self.plans[order] = found
        return found

    def make_plan(self, peak_order: tuple) -> DevicePlan:
        """Every part in the order of DeviceRenderer.families; the values (plan_values):
        each scope's episodes, each scope's exceeded_now, the exceeded intervals, then the
        peaks in peak_order. Time counters are scaled by the plan's scale, US."""
        items: list = []
        for prefix, key, scale in self.counters:  # scale: 1 or US (COUNTERS)
            items += (Line(COUNT if scale == 1 else SCALED, PAGE_COUNTERS.index(key),
                           prefix), END)
        scoped = len(self.scopes)
        items += [Line(SCALED, PAGE_COUNTERS.index(counter), f"{m.EXCEEDED_SECONDS}{labels} ")
                  for _key, counter, labels in self.scopes] + [END]
        items += [Line(VALUE, i, f"{m.EXCEEDED_EPISODES}{labels} ")
                  for i, (_key, _counter, labels) in enumerate(self.scopes)] + [END]
        items += [Line(VALUE, scoped + i, f"{m.EXCEEDED_NOW}{labels} ")
                  for i, (_key, _counter, labels) in enumerate(self.scopes)] + [END]
        items += (Line(VALUE, 2 * scoped, self.intervals), END,
                  Line(COUNT, PAGE_COUNTERS.index(QUEUE_COUNTER), self.queue), END)
        specs = self.specs()
        items += specs[:2] + [END] + specs[2:] + [END]
        by_family: list[list] = [[], [], []]
        for i, key in enumerate(peak_order):
            index, prefix = self.peak(key)
            by_family[index].append(Line(VALUE, 2 * scoped + 1 + i, prefix))
        for lines in by_family:
            items += lines + [END]
        return DevicePlan(items, US)

    def plan_values(self, d, peak_order: tuple) -> list:
        """The values a plan writes besides the totals' (make_plan's order)."""
        episodes, now = d.episodes, d.exceeded_now
        return ([episodes.get(key, 0) for key, _c, _l in self.scopes]
                + [1.0 if now.get(key) else 0.0 for key, _c, _l in self.scopes]
                + [d.exceeded_intervals] + [d.peaks[key] for key in peak_order])

    def parts(self, d, out: LineBuffer | None) -> list[bytes]:
        """The device's chunk of each per-device family, in DeviceRenderer.families' order."""
        if self.plannable and out is not None:
            plan, order = self.plan_of(tuple(d.peaks))
            found = out.render(plan, d.totals, self.plan_values(d, order))
            if found is not None:
                return found
        return [text.encode() for text in self.python_parts(d)]

    def python_parts(self, d) -> list[str]:
        """The same chunks written in Python: the C core's reference."""
        if not self.prefixes:  # the plan could not write these totals (a count past 2^64)
            self.prefixes = self.python_prefixes()
        c = d.totals.page.counters
        parts = [prefix + fmt(c[key] * scale if scale != 1 else c[key]) + "\n"
                 for prefix, key, scale in self.counters]
        parts.append("".join(f"{m.EXCEEDED_SECONDS}{labels} {fmt(c[counter] * US)}\n"
                             for _key, counter, labels in self.scopes))
        parts.append("".join(f"{m.EXCEEDED_EPISODES}{labels} {fmt(d.episodes.get(key, 0))}\n"
                             for key, _counter, labels in self.scopes))
        parts.append("".join(f"{m.EXCEEDED_NOW}{labels} "
                             f"{'1.0' if d.exceeded_now.get(key) else '0.0'}\n"
                             for key, _counter, labels in self.scopes))
        parts.append(self.intervals + fmt(d.exceeded_intervals) + "\n")
        parts.append(self.queue + fmt(c[QUEUE_COUNTER]) + "\n")
        parts += self.histograms(d.totals)
        peaks: list[list[str]] = [[], [], []]
        for key, value in sorted(d.peaks.items(), key=lambda kv: str(kv[0])):
            index, prefix = self.peak(key)
            peaks[index].append(prefix + fmt(value) + "\n")
        return parts + ["".join(lines) for lines in peaks]

    def histograms(self, totals: devicecore.Totals) -> list[str]:
        """The latency histograms' lines, then the bands', written in Python."""
        page = totals.page
        hists = [page.read, page.write]
        sums = [page["total_read_time"] * US, page["total_write_time"] * US]
        for band, (read_us, write_us) in zip(page.bands, totals.band_sums_us()):
            hists += (band.read, band.write)
            sums += (read_us * US, write_us * US)
        texts = [histogram_text(prefixes, buckets, hist, sum_value)
                 for prefixes, buckets, hist, sum_value
                 in zip(self.prefixes, self.buckets, hists, sums)]
        return ["".join(texts[:2]), "".join(texts[2:])]

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
        self._identity_key: list | None = None
        self._identity: list[Family] = []

    def c_bytes(self) -> int:
        """Memory held in C (plans' arrays, the line buffer): what tracemalloc misses."""
        plans = {id(plan): plan for lines in self._lines.values()
                 for plan, _order in lines.plans.values()}  # a plan under two keys: once
        held = sum(plan.c_bytes for plan in plans.values())
        return held + (self._out.c_bytes if self._out is not None else 0)

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
                         "bins; _sum is the device's total time.")
        bands = Family(m.IO_SIZE_LATENCY, "histogram", "IO latency per IO-size band (upper "
                       "bound in io_size); _sum estimated from bin midpoints.")
        window = f" over the last {snap.peak_window:g}s."
        peaks = (Family(m.PEAK_IOPS, "gauge", "Highest 1-interval IOPS" + window),
                 Family(m.PEAK_THROUGHPUT, "gauge", "Highest 1-interval throughput" + window),
                 Family(m.PEAK_LATENCY_P99, "gauge", "Highest 1-interval p99 latency" + window))
        seen: dict = {}
        families = counters + [exceeded, episodes, now, intervals, queue, latency, bands,
                               *peaks]  # each device's parts, in this order
        for fam in families:
            fam.binary = True  # lines of UTF-8 bytes, one chunk per device
        for d in live:
            lines = self.lines_of(d, snap, seen)
            for fam, part in zip(families, lines.parts(d, self._out)):
                if part:
                    fam.lines.append(part)
        self._lines = seen  # devices gone, or with another layout, are dropped
        out = counters + [exceeded, episodes, now, intervals, queue, latency]
        if snap.io_size:
            out.append(bands)
        if snap.peaks_enabled:
            out += peaks
        return out + self.identity(devices)

    def identity(self, devices) -> list[Family]:
        """identity_families, written again only when one of their inputs changed."""
        key = [(d.device, d.version, d.volume, d.up, d.resets, d.layout_changes, d.glitches)
               for d in devices]
        if key != self._identity_key:
            self._identity = identity_families(devices)
            self._identity_key = key
        return self._identity
