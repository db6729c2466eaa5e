"""The Prometheus view of AgentState, rendered as exposition text by hand.

A scrape copies what it needs under the sampler's lock (a struct copy of each device's
totals, a few small dicts), renders outside it, and keeps the result until the state
changes (the next tick): however many clients scrape, the text is built at most once a
tick, and the sampler never waits for a render. prometheus_client still provides the
process and platform collectors.
"""

from __future__ import annotations

import copy
import gzip
import platform
import threading
from dataclasses import dataclass

from nitrometer import __version__, native
from nitrometer import metrics as m
from nitrometer.agent.exposition import (
    COARSE_BAND_EDGES_US,
    COARSE_LATENCY_EDGES_US,
    Family,
    buckets,
    labelstr,
)
from nitrometer.agent.state import POLL_BUCKETS, US, AgentState
from nitrometer.logpage import EXCEEDED_COUNTERS

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
GZIP_LEVEL = 1  # the text is repetitive: level 1 already shrinks it ~10x, at a fraction of 6's cost
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
POLL_LES = tuple(repr(b) for b in POLL_BUCKETS) + ("+Inf",)


@dataclass
class DeviceView:
    """One device as a scrape sees it: copies, so the sampler can go on changing the state."""

    device: object
    live: bool
    up: bool
    version: int
    resets: int
    layout_changes: int
    glitches: dict
    exceeded_intervals: int
    exceeded_now: dict
    episodes: dict
    scopes: tuple
    volume: object  # ec2.VolumeLimits of an EBS volume, or None
    totals: native.Page | None
    band_sums: list
    band_labels: tuple
    peaks: dict


def copy_totals(totals: native.Totals) -> native.Page:
    """One struct copy of the device's totals (counters, bins, bands, bounds)."""
    return native.Page(native.ffi.new("nm_page *", totals.page._c[0]))


@dataclass
class Snapshot:
    devices: list
    latency_edges: tuple | None  # None: the device's own bins
    band_edges: tuple | None
    io_size: bool
    peaks_enabled: bool
    peak_window: float
    poll_buckets: list
    poll_sum: float
    overruns: int
    tick_errors: int
    device_errors: dict
    host: dict
    instance: object
    reader_restarts: int | None = None
    workloads: list | None = None  # agent.workloads.WorkloadCollector.view()


def snapshot(state: AgentState) -> Snapshot:
    """Copy what a scrape renders; the caller holds state.lock, briefly."""
    views = []
    for d in state.devices.values():
        live = d.live
        views.append(DeviceView(
            device=d.device, live=live, up=d.up and live, version=d.version, resets=d.resets,
            layout_changes=d.layout_changes, glitches=dict(d.glitches),
            exceeded_intervals=d.exceeded_intervals, exceeded_now=dict(d.exceeded_now),
            episodes=dict(d.episodes), scopes=d.scopes,
            volume=state.volumes.get(d.device.serial) if state.volumes is not None else None,
            totals=copy_totals(d.totals) if live else None,
            band_sums=d.totals.band_sums_us() if live and state.io_size else [],
            band_labels=d.band_labels,
            peaks=d.peaks.peaks() if live and state.peaks_enabled else {}))
    coarse = state.buckets == "coarse"
    return Snapshot(views, COARSE_LATENCY_EDGES_US if coarse else None,
                    COARSE_BAND_EDGES_US if coarse else None,
                    state.io_size, state.peaks_enabled, state.peak_window,
                    list(state.poll_buckets), state.poll_sum, state.overruns,
                    state.tick_errors, dict(state.device_errors), dict(state.host),
                    copy.copy(state.instance), state.reader_restarts,
                    state.workloads.view() if getattr(state, "workloads", None) else None)


def device_families(snap: Snapshot) -> list[Family]:
    devices = sorted(snap.devices, key=lambda d: d.device.name)
    live = [d for d in devices if d.live]
    labels = {id(d): labelstr(LABELS, _values(d)) for d in devices}
    counters = {id(d): d.totals.counters for d in live}
    out = []
    for name, key, scale, doc in COUNTERS:
        fam = Family(name, "counter", doc + " Monotonic across device counter resets.")
        for d in live:
            value = counters[id(d)][key]
            fam.add(labels[id(d)], value * scale if scale != 1 else value)
        out.append(fam)
    scoped = LABELS + ("scope", "limit")
    exceeded = Family(m.EXCEEDED_SECONDS, "counter", "Time the volume or instance ran past "
                      "its IOPS or throughput limit.")
    episodes = Family(m.EXCEEDED_EPISODES, "counter", "Ended episodes of the limit exceeded "
                      "(runs of exceeded intervals).")
    now = Family(m.EXCEEDED_NOW, "gauge", "1 if the limit was exceeded for at least "
                 "exceeded.min-share of the last interval.")
    intervals = Family(m.EXCEEDED_INTERVALS, "counter", "Poll intervals in which a limit was "
                       "exceeded for at least exceeded.min-share of the interval.")
    queue = Family(m.QUEUE_LENGTH, "gauge", "Outstanding IOs at the last poll.")
    for d in live:
        for scope, limit in d.scopes:
            text = labelstr(scoped, _values(d) + (scope, limit))
            exceeded.add(text, counters[id(d)][EXCEEDED_COUNTERS[scope, limit]] * US)
            episodes.add(text, d.episodes.get((scope, limit), 0))
            now.add(text, 1.0 if d.exceeded_now.get((scope, limit)) else 0.0)
        intervals.add(labels[id(d)], d.exceeded_intervals)
        queue.add(labels[id(d)], counters[id(d)][QUEUE_COUNTER])
    out += [exceeded, episodes, now, intervals, queue]

    latency = Family(m.LATENCY, "histogram", "IO latency, from the device's histogram bins; "
                     "_sum is the device's total time.")
    for d in live:
        for op in ("read", "write"):
            hist = d.totals.read if op == "read" else d.totals.write
            les, counts = buckets(hist, snap.latency_edges)
            latency.histogram(LABELS + ("op",), _values(d) + (op,), les, counts,
                              counters[id(d)][f"total_{op}_time"] * US)
    out.append(latency)
    if snap.io_size:
        bands = Family(m.IO_SIZE_LATENCY, "histogram", "IO latency per IO-size band (upper "
                       "bound in io_size); _sum estimated from bin midpoints.")
        names = LABELS + ("op", "io_size")
        for d in live:
            for band, label, sums in zip(d.totals.bands, d.band_labels, d.band_sums):
                for op, hist, sum_us in (("read", band.read, sums[0]),
                                         ("write", band.write, sums[1])):
                    les, counts = buckets(hist, snap.band_edges)
                    bands.histogram(names, _values(d) + (op, label), les, counts, sum_us * US)
        out.append(bands)
    if snap.peaks_enabled:
        out += peak_families(snap, live)

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
        ebs = dev.kind == "ebs"
        volume_type = d.volume.volume_type if d.volume is not None else ""
        info.add(labelstr(info_names, _values(d) + (
            dev.model, dev.bdev, dev.firmware, dev.controller, str(d.version),
            dev.serial if ebs else "", volume_type)), 1)
        if ebs and d.volume is not None:
            if d.volume.iops:
                volume_iops.add(labels[id(d)], d.volume.iops)
            if d.volume.throughput:
                volume_tp.add(labels[id(d)], d.volume.throughput)
        up.add(labels[id(d)], 1.0 if d.up else 0.0)
        resets.add(labels[id(d)], d.resets)
        layouts.add(labels[id(d)], d.layout_changes)
        for name, count in sorted(d.glitches.items()):
            glitches.add(labelstr(LABELS + ("field",), _values(d) + (name,)), count)
        count_by_kind[dev.kind] = count_by_kind.get(dev.kind, 0) + 1
    seen = Family(m.DEVICES, "gauge", "Devices being polled.")
    for kind, count in sorted(count_by_kind.items()):
        seen.add(labelstr(("kind",), (kind,)), count)
    return out + [info, volume_iops, volume_tp, up, resets, layouts, glitches, seen]


def peak_families(snap: Snapshot, live) -> list[Family]:
    window = f" over the last {snap.peak_window:g}s."
    iops = Family(m.PEAK_IOPS, "gauge", "Highest 1-interval IOPS" + window)
    tput = Family(m.PEAK_THROUGHPUT, "gauge", "Highest 1-interval throughput" + window)
    lat = Family(m.PEAK_LATENCY_P99, "gauge", "Highest 1-interval p99 latency" + window)
    for d in live:
        for key, value in sorted(d.peaks.items(), key=lambda kv: str(kv[0])):
            if key[0] == "iops":
                iops.add(labelstr(LABELS + ("op",), _values(d) + (key[1],)), value)
            elif key[0] == "throughput":
                tput.add(labelstr(LABELS + ("op",), _values(d) + (key[1],)), value)
            else:
                lat.add(labelstr(LABELS + ("op",), _values(d) + (key[1],)), value)
    return [iops, tput, lat]


def agent_families(snap: Snapshot) -> list[Family]:
    build = Family(m.BUILD_INFO, "gauge", "Agent build; value 1.")
    build.add(labelstr(("version", "python_version"),
                       (__version__, platform.python_version())), 1)
    poll = Family(m.POLL_DURATION, "histogram", "Time one tick took to read every device.")
    poll.histogram((), (), POLL_LES, snap.poll_buckets, snap.poll_sum)
    overruns = Family(m.POLL_OVERRUNS, "counter", "Ticks skipped because the loop ran late.")
    overruns.add("", snap.overruns)
    tick_errors = Family(m.TICK_ERRORS, "counter", "Sampling ticks that raised an error "
                         "(logged; sampling went on).")
    tick_errors.add("", snap.tick_errors)
    errors = Family(m.DEVICE_ERRORS, "counter", "Failed device reads, by reason.")
    for key, count in sorted(snap.device_errors.items()):
        errors.add(labelstr(LABELS + ("reason",), key), count)
    out = [build, poll, overruns, tick_errors, errors]
    if snap.reader_restarts is not None:
        restarts = Family(m.READER_RESTARTS, "counter", "Privileged readers replaced because "
                          "they died or stopped answering (each one is logged).")
        restarts.add("", snap.reader_restarts)
        out.append(restarts)
    if snap.host:
        busy = Family(m.HOST_CPU_BUSY, "gauge", "Share of CPU time not idle or in iowait over "
                      "the last interval, all CPUs.")
        busy.add("", snap.host["busy"])
        iowait = Family(m.HOST_CPU_IOWAIT, "gauge", "Share of CPU time in iowait over the last "
                        "interval, all CPUs.")
        iowait.add("", snap.host["iowait"])
        out += [busy, iowait]
    if "busy_seconds" in snap.host:
        busy_seconds = Family(m.HOST_CPU_BUSY_SECONDS, "counter", "CPU-seconds neither idle "
                              "nor in iowait, all CPUs, since the agent started.")
        busy_seconds.add("", snap.host["busy_seconds"])
        cpu_seconds = Family(m.HOST_CPU_SECONDS, "counter", "CPU-seconds of all CPUs since "
                             "the agent started.")
        cpu_seconds.add("", snap.host["cpu_seconds"])
        out += [busy_seconds, cpu_seconds]
    if snap.instance is not None:
        out += instance_families(snap.instance)
    return out


def instance_families(ctx) -> list[Family]:
    info = Family(m.INSTANCE_INFO, "gauge", "The EC2 instance; value 1.")
    info.add(labelstr(tuple(ctx.info_labels) + ("source",),
                      tuple(ctx.info_labels.values()) + (ctx.source,)), 1)
    out = [info]
    base = labelstr(("instance_type", "region"), (ctx.instance_type, ctx.region))
    if ctx.normalization_factor is not None:
        nf = Family(m.NORMALIZATION_FACTOR, "gauge", "Normalization factor of the instance "
                    "size.")
        nf.add(base, ctx.normalization_factor)
        out.append(nf)
    if ctx.price is not None:
        price = Family(m.PRICE, "gauge", "On-demand Linux price of this instance type.")
        price.add(base, ctx.price)
        out.append(price)
    if ctx.graviton_price is not None:
        gprice = Family(m.GRAVITON_PRICE, "gauge", "On-demand price of the Graviton "
                        "equivalent.")
        gprice.add(labelstr(("instance_type", "region", "graviton_instance_type"),
                            (ctx.instance_type, ctx.region, ctx.graviton_type)),
                   ctx.graviton_price)
        out.append(gprice)
    if ctx.limits:
        iops = Family(m.INSTANCE_IOPS_LIMIT, "gauge", "The instance's published IOPS limit "
                      "for all its devices of a kind (op total: reads and writes together).")
        tp = Family(m.INSTANCE_THROUGHPUT_LIMIT, "gauge", "The instance's published "
                    "throughput limit for all its devices of a kind.")
        for (kind, op), values in sorted(ctx.limits.items()):
            labels = labelstr(("instance_type", "kind", "op"), (ctx.instance_type, kind, op))
            if "iops" in values:
                iops.add(labels, values["iops"])
            if "throughput" in values:
                tp.add(labels, values["throughput"])
        out += [iops, tp]
    accrued = (
        (m.INSTANCE_SECONDS, "Seconds this agent has run on the instance (instance time).",
         ctx.seconds, True),
        (m.NORMALIZED_SECONDS, "Normalized instance seconds accrued: instance time x the "
         "normalization factor.", ctx.normalized_seconds,
         ctx.normalization_factor is not None),
        (m.COST, "On-demand cost accrued while the agent ran.", ctx.cost,
         ctx.price is not None),
        (m.GRAVITON_COST, "What the same hours cost on the Graviton equivalent.",
         ctx.graviton_cost, ctx.graviton_price is not None),
    )
    for name, doc, value, known in accrued:
        if known:
            fam = Family(name, "counter", doc)
            fam.add(base, value)
            out.append(fam)
    return out


def _values(d: DeviceView) -> tuple[str, str, str]:
    dev = d.device
    return (dev.name, dev.serial, dev.kind)


def render(snap: Snapshot, *, openmetrics: bool = False) -> str:
    parts = []
    families = device_families(snap)
    if snap.workloads is not None:
        from nitrometer.agent.workloads import families as workload_families

        families += workload_families(snap.workloads)
    for fam in families + agent_families(snap):
        parts.append(fam.header(openmetrics))
        parts.extend(fam.lines)
    return "".join(parts)


def wants_openmetrics(accept: str | None) -> bool:
    return any(part.split(";")[0].strip() == "application/openmetrics-text"
               for part in (accept or "").split(","))


class Exporter:
    """The /metrics body for a format, rendered at most once per state version."""

    def __init__(self, state: AgentState, *, process: bool = True):
        self.state = state
        self.process_registry = None
        if process:
            from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

            self.process_registry = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=self.process_registry)
            PlatformCollector(registry=self.process_registry)
        self._cache: dict[tuple[bool, bool], tuple[int, bytes]] = {}
        self._render_lock = threading.Lock()  # concurrent scrapes wait for one render
        self.renders = 0

    def body(self, *, openmetrics: bool = False, compress: bool = False) -> bytes:
        key = (openmetrics, compress)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == self.state.version:
            return cached[1]
        with self._render_lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == self.state.version:
                return cached[1]
            if compress:
                version, plain = self._plain(openmetrics)
                body = gzip.compress(plain, compresslevel=GZIP_LEVEL, mtime=0)
            else:
                version, body = self._plain(openmetrics)
            self._cache[key] = (version, body)
            return body

    def _plain(self, openmetrics: bool) -> tuple[int, bytes]:
        cached = self._cache.get((openmetrics, False))
        if cached is not None and cached[0] == self.state.version:
            return cached
        with self.state.lock:
            version = self.state.version
            snap = snapshot(self.state)
        text = render(snap, openmetrics=openmetrics) + self._process_text(openmetrics)
        self.renders += 1
        result = (version, text.encode())
        self._cache[(openmetrics, False)] = result
        return result

    def _process_text(self, openmetrics: bool) -> str:
        if openmetrics:
            from prometheus_client.openmetrics.exposition import generate_latest as om_latest

            if self.process_registry is None:
                return "# EOF\n"
            return om_latest(self.process_registry).decode()
        if self.process_registry is None:
            return ""
        from prometheus_client import generate_latest

        return generate_latest(self.process_registry).decode()

    def content_type(self, openmetrics: bool) -> str:
        return CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
