"""The Prometheus view of AgentState, rendered as exposition text by hand.

A render copies what it needs under the sampler's lock (a struct copy of each device's
totals, a few small dicts), renders outside it from that copy, and keeps the result until
the state changes (the next tick): however many clients scrape, the text is built at most
once a tick per format, and the sampler never waits for a render.
"""

from __future__ import annotations

import copy
import gzip
import platform
import threading
from dataclasses import dataclass

from nitrometer import __version__, devicecore
from nitrometer import metrics as m
from nitrometer.agent.devicelines import DeviceRenderer
from nitrometer.agent.exposition import (
    COARSE_BAND_EDGES_US,
    COARSE_LATENCY_EDGES_US,
    Family,
    labelstr,
)
from nitrometer.agent.process import ProcessMetrics
from nitrometer.agent.state import POLL_BUCKETS, AgentState

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
GZIP_LEVEL = 1  # the text is repetitive: level 1 already shrinks it ~10x, at a fraction of 6's cost
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
    totals: devicecore.Totals | None  # counters, bins, bands and band sums
    band_labels: tuple
    peaks: dict


def copy_totals(totals: devicecore.Totals) -> devicecore.Totals:
    """One struct copy of the device's totals (counters, bins, bands, bounds, band sums)."""
    copied = devicecore.Totals()
    copied.copy_from(totals)
    return copied


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
        errors.add(labelstr(m.DEVICE_LABELS + ("reason",), key), count)
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


def render(snap: Snapshot, *, openmetrics: bool = False, devices: DeviceRenderer | None = None,
           process: ProcessMetrics | None = None) -> bytes:
    """The whole exposition, UTF-8; `devices` keeps the device templates from one render to
    the next (a fresh one builds them all)."""
    families = (devices or DeviceRenderer()).families(snap)
    if snap.workloads is not None:
        from nitrometer.agent.workloads import families as workload_families

        families += workload_families(snap.workloads)
    families += agent_families(snap)
    if process is not None:
        families += process.families()
    out: list[bytes] = []
    text: list[str] = []  # since the last family of bytes
    for fam in families:
        text.append(fam.header(openmetrics))
        if fam.binary:
            out.append("".join(text).encode())
            out += fam.lines
            text = []
        else:
            text += fam.lines
    if openmetrics:
        text.append("# EOF\n")
    out.append("".join(text).encode())
    return b"".join(out)


def wants_openmetrics(accept: str | None) -> bool:
    return any(part.split(";")[0].strip() == "application/openmetrics-text"
               for part in (accept or "").split(","))


class Exporter:
    """The /metrics body for a format, rendered at most once per state version.

    A body asked for during each of the last two ticks is rendered again right after the
    next one, in the sampling thread (state.after_tick): a Prometheus scraping at the poll
    interval then never waits for a render, and scrapes only hand out bytes. A body asked
    for less often is rendered when asked, so an idle agent renders nothing."""

    def __init__(self, state: AgentState, *, process: bool = True, proc: str = "/proc"):
        self.state = state
        self.process = ProcessMetrics(proc) if process else None
        self.devices = DeviceRenderer()
        self._cache: dict[tuple[bool, bool], tuple[int, bytes]] = {}
        self._asked: dict[tuple[bool, bool], tuple[int, int]] = {}  # last two ticks asked at
        self._render_lock = threading.Lock()  # concurrent scrapes wait for one render
        self.renders = 0
        self.rendered_ahead = 0
        state.after_tick.append(self.render_ahead)

    def body(self, *, openmetrics: bool = False, compress: bool = False) -> bytes:
        key = (openmetrics, compress)
        tick = self.state.ticks
        asked = self._asked.get(key)
        if asked is None or asked[1] != tick:
            self._asked[key] = (asked[1] if asked else -1, tick)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == self.state.version:
            return cached[1]
        return self._body(key)

    def _body(self, key: tuple[bool, bool]) -> bytes:
        openmetrics, compress = key
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

    def render_ahead(self) -> None:
        """The bodies scraped during each of the last two ticks, for the tick just made."""
        tick = self.state.ticks
        for key, (before, last) in list(self._asked.items()):
            if last == tick - 1 and before == tick - 2:
                self._body(key)
                self.rendered_ahead += 1

    def _plain(self, openmetrics: bool) -> tuple[int, bytes]:
        cached = self._cache.get((openmetrics, False))
        if cached is not None and cached[0] == self.state.version:
            return cached
        with self.state.lock:
            version = self.state.version
            snap = snapshot(self.state)
        body = render(snap, openmetrics=openmetrics, devices=self.devices,
                      process=self.process)
        self.renders += 1
        result = (version, body)
        self._cache[(openmetrics, False)] = result
        return result

    def content_type(self, openmetrics: bool) -> str:
        return CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
