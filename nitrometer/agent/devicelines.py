"""The per-device families of /metrics, written from templates.

A device's label sets and bucket bounds go into its lines once, when the device first shows
up or its bin layout or the bucket settings change; a render then writes only the values.
At 32 instance-store devices that is ~3,500 samples, nearly all of them histogram buckets.
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


def histogram_prefixes(name: str, names: tuple, values: tuple, les: tuple) -> list[str]:
    """Each line of one histogram up to its value: buckets, then _count and _sum."""
    before, after = bucket_affixes(name, names, values)
    labels = labelstr(names, values)
    return [f"{before}{le}{after}" for le in les] + [f"{name}_count{labels} ",
                                                     f"{name}_sum{labels} "]


class Buckets:
    """How one bin layout becomes the exported buckets: the le texts, and how many of the
    device's bins each cumulative bucket counts. With coarse edges a bin goes into the first
    bucket whose edge is >= its upper bound (as native.merge_bins), so with increasing
    bounds the cumulative bucket of edge e counts the bins with upper <= e: the first
    bins_below[e] of them, read off the bins' running sum."""

    __slots__ = ("les", "bins_below", "edges", "in_order")

    def __init__(self, uppers: tuple, edges: tuple | None):
        self.edges = edges
        self.in_order = all(a < b for a, b in zip(uppers, uppers[1:]))
        self.bins_below = None  # None: one bucket per bin
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
    """One live device's lines of the per-device families, values left out."""

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
        self.latency = latency  # Buckets of reads, of writes
        self.latency_prefixes = [
            histogram_prefixes(m.LATENCY, LABELS + ("op",), values + (op,), b.les)
            for op, b in zip(OPS, latency)]
        self.bands = bands  # Buckets of the band bins (all bands share them), or ()
        names = LABELS + ("op", "io_size")
        self.bands_prefixes = [
            histogram_prefixes(m.IO_SIZE_LATENCY, names, values + (op, label), bands[0].les)
            for label in band_labels for op in OPS] if bands else []
        self.peaks: dict = {}  # peak key -> (family index, line prefix)
        # Per histogram (latency, then bands): the bins and sum last written, and the text.
        self.last: list = [None] * (len(self.latency_prefixes) + len(self.bands_prefixes))

    def histogram(self, index: int, prefixes: list[str], buckets: Buckets,
                  hist: native.Histogram, sum_value: float) -> str:
        """One histogram's lines; the last text again when its bins and sum have not moved
        (an idle device, an IO size nobody uses)."""
        counts = hist.counts
        last = self.last[index]
        if last is not None and last[0] == counts and last[1] == sum_value:
            return last[2]
        values = counts_text(buckets.values(hist, counts))
        values += (values[-1], fmt(sum_value) + "\n")
        text = "".join(map(add, prefixes, values))
        self.last[index] = (counts, sum_value, text)
        return text

    def peak(self, key) -> tuple[int, str]:
        found = self.peaks.get(key)
        if found is None:
            index = PEAK_FAMILIES.get(key[0], 2)
            name = (m.PEAK_IOPS, m.PEAK_THROUGHPUT, m.PEAK_LATENCY_P99)[index]
            found = self.peaks[key] = (index, f"{name}"
                                       f"{labelstr(LABELS + ('op',), self.values + (key[1],))} ")
        return found


def layout_key(d, snap, bands: list) -> tuple:
    """What a device's templates depend on besides its labels and scopes."""
    key = (tuple(d.totals.read.upper), tuple(d.totals.write.upper), snap.latency_edges)
    n = min(len(bands), len(d.band_labels), len(d.band_sums))
    if snap.io_size and n:
        key += (tuple(bands[0].read.upper), d.band_labels[:n], snap.band_edges)
    return key


class DeviceRenderer:
    """The per-device families of each render; keeps the templates of the devices it saw
    last time."""

    def __init__(self):
        self._lines: dict[tuple, DeviceLines] = {}

    def lines_of(self, d, snap, bands: list, seen: dict) -> DeviceLines:
        key = (d.device.name, d.device.serial, d.device.kind, d.scopes,
               layout_key(d, snap, bands))
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
        for d in live:
            totals_bands = d.totals.bands if snap.io_size else []
            lines = self.lines_of(d, snap, totals_bands, seen)
            c = d.totals.counters
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
            prefixes = lines.latency_prefixes
            latency.lines += (
                lines.histogram(0, prefixes[0], lines.latency[0], d.totals.read,
                                c["total_read_time"] * US),
                lines.histogram(1, prefixes[1], lines.latency[1], d.totals.write,
                                c["total_write_time"] * US))
            if lines.bands:
                b, prefixes, i = lines.bands[0], lines.bands_prefixes, 2
                for band, sums in zip(totals_bands, d.band_sums):
                    if i - 2 >= len(prefixes):
                        break
                    bands.lines += (
                        lines.histogram(i, prefixes[i - 2], b, band.read, sums[0] * US),
                        lines.histogram(i + 1, prefixes[i - 1], b, band.write, sums[1] * US))
                    i += 2
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
