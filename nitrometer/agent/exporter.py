"""The Prometheus view of AgentState: a custom Collector; a scrape never touches hardware."""

from __future__ import annotations

import platform

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from nitrometer import __version__
from nitrometer import metrics as m
from nitrometer.agent.state import EXCEEDED_COUNTERS, POLL_BUCKETS, US, AgentState

LABELS = list(m.DEVICE_LABELS)
COUNTERS = (
    (m.READ_OPS, "total_read_ops", 1, "Read operations completed."),
    (m.WRITE_OPS, "total_write_ops", 1, "Write operations completed."),
    (m.READ_BYTES, "total_read_bytes", 1, "Bytes read."),
    (m.WRITE_BYTES, "total_write_bytes", 1, "Bytes written."),
    (m.READ_TIME, "total_read_time", US, "Time spent on completed reads."),
    (m.WRITE_TIME, "total_write_time", US, "Time spent on completed writes."),
)


def _counter(name: str, doc: str, labels=LABELS) -> CounterMetricFamily:
    return CounterMetricFamily(m.family(name), doc, labels=list(labels))


def _gauge(name: str, doc: str, labels=LABELS) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class AgentCollector(Collector):
    def __init__(self, state: AgentState):
        self.state = state

    def collect(self):
        with self.state.lock:
            families = list(self._device_families()) + list(self._agent_families())
        yield from families

    def _device_families(self):
        devices = sorted(self.state.devices.values(), key=lambda d: d.device.name)
        live = [d for d in devices if d.last_page is not None]
        for name, key, scale, doc in COUNTERS:
            fam = _counter(name, doc + " Monotonic across device counter resets.")
            for d in live:
                value = d.totals.get(key, 0)
                fam.add_metric(_values(d), value * scale if scale != 1 else value)
            yield fam
        exceeded = _counter(m.EXCEEDED_SECONDS, "Time the volume or instance ran past its "
                            "IOPS or throughput limit.", LABELS + ["scope", "limit"])
        episodes = _counter(m.EXCEEDED_EPISODES, "Ended runs of consecutive intervals with the "
                            "limit exceeded.", LABELS + ["scope", "limit"])
        now = _gauge(m.EXCEEDED_NOW, "1 if the limit was exceeded in the last interval.",
                     LABELS + ["scope", "limit"])
        intervals = _counter(m.EXCEEDED_INTERVALS, "Poll intervals in which any limit was "
                             "exceeded.")
        queue = _gauge(m.QUEUE_LENGTH, "Outstanding IOs at the last poll.")
        for d in live:
            for scope, limit in d.scopes:
                values = _values(d) + [scope, limit]
                exceeded.add_metric(values, d.totals.get(EXCEEDED_COUNTERS[scope, limit], 0) * US)
                episodes.add_metric(values, d.episodes.ended_counts.get((scope, limit), 0))
                now.add_metric(values, 1.0 if d.exceeded_now.get((scope, limit)) else 0.0)
            intervals.add_metric(_values(d), d.exceeded_intervals)
            queue.add_metric(_values(d), d.queue_length)
        yield from (exceeded, episodes, now, intervals, queue)

        latency = HistogramMetricFamily(m.LATENCY, "IO latency, from the device's histogram "
                                        "bins; _sum is the device's total time.",
                                        labels=LABELS + ["op"])
        for d in live:
            for op, hist in d.hists.items():
                latency.add_metric(_values(d) + [op], hist.buckets(), hist.sum_seconds)
        yield latency
        if self.state.io_size:
            band_latency = HistogramMetricFamily(
                m.IO_SIZE_LATENCY, "IO latency per IO-size band (upper bound in io_size); "
                "_sum estimated from bin midpoints.", labels=LABELS + ["op", "io_size"])
            for d in live:
                for label, per_op in d.bands.items():
                    for op, hist in per_op.items():
                        band_latency.add_metric(_values(d) + [op, label], hist.buckets(),
                                                hist.sum_seconds)
            yield band_latency
        if self.state.peaks_enabled:
            yield from self._peaks(live)

        info = _gauge(m.DEVICE_INFO, "Device identity; value 1.",
                      LABELS + ["model", "bdev", "firmware", "controller"])
        up = _gauge(m.DEVICE_UP, "1 if the last read of the device succeeded.")
        resets = _counter(m.COUNTER_RESETS, "Times the device restarted its counters.")
        count_by_kind: dict[str, int] = {}
        for d in devices:
            dev = d.device
            info.add_metric(_values(d) + [dev.model, dev.bdev, dev.firmware, dev.controller], 1)
            up.add_metric(_values(d), 1.0 if d.up and d.last_page is not None else 0.0)
            resets.add_metric(_values(d), d.resets)
            count_by_kind[dev.kind] = count_by_kind.get(dev.kind, 0) + 1
        seen = _gauge(m.DEVICES, "Devices being polled.", ["kind"])
        for kind, count in sorted(count_by_kind.items()):
            seen.add_metric([kind], count)
        yield from (info, up, resets, seen)

    def _peaks(self, live):
        window = f" over the last {self.state.peak_window:g}s."
        iops = _gauge(m.PEAK_IOPS, "Highest 1-interval IOPS" + window, LABELS + ["op"])
        tput = _gauge(m.PEAK_THROUGHPUT, "Highest 1-interval throughput" + window,
                      LABELS + ["op"])
        lat = _gauge(m.PEAK_LATENCY, "Highest 1-interval latency quantile" + window,
                     LABELS + ["op", m.PEAK_LATENCY_LABEL])
        for d in live:
            peaks = d.peaks.peaks()
            for key, value in sorted(peaks.items(), key=lambda kv: str(kv[0])):
                if key[0] == "iops":
                    iops.add_metric(_values(d) + [key[1]], value)
                elif key[0] == "throughput":
                    tput.add_metric(_values(d) + [key[1]], value)
                else:
                    percentile = m.PERCENTILES.get(key[2], f"{key[2] * 100:g}")
                    lat.add_metric(_values(d) + [key[1], percentile], value)
        yield from (iops, tput, lat)

    def _agent_families(self):
        s = self.state
        build = _gauge(m.BUILD_INFO, "Agent build; value 1.", ["version", "python_version"])
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        buckets, running = [], 0
        for bound, count in zip(POLL_BUCKETS, s.poll_buckets, strict=False):
            running += count
            buckets.append((repr(bound), running))
        buckets.append(("+Inf", running + s.poll_buckets[-1]))
        poll = HistogramMetricFamily(m.POLL_DURATION, "Time one tick took to read every "
                                     "device.", buckets=buckets, sum_value=s.poll_sum)
        yield poll
        overruns = _counter(m.POLL_OVERRUNS, "Ticks skipped because the loop ran late.", [])
        overruns.add_metric([], s.overruns)
        yield overruns
        errors = _counter(m.DEVICE_ERRORS, "Failed device reads, by reason.",
                          LABELS + ["reason"])
        for key, count in sorted(s.device_errors.items()):
            errors.add_metric(list(key), count)
        yield errors
        if s.host:
            busy = _gauge(m.HOST_CPU_BUSY, "Share of CPU time not idle or in iowait over the "
                          "last interval, all CPUs.", [])
            busy.add_metric([], s.host["busy"])
            iowait = _gauge(m.HOST_CPU_IOWAIT, "Share of CPU time in iowait over the last "
                            "interval, all CPUs.", [])
            iowait.add_metric([], s.host["iowait"])
            yield from (busy, iowait)
        if s.instance is not None:
            yield from instance_families(s.instance)


def instance_families(ctx):
    info = _gauge(m.INSTANCE_INFO, "The EC2 instance; value 1.",
                  ["instance_id", "instance_type", "family", "size", "arch", "region", "az",
                   "source"])
    info.add_metric(list(ctx.info_labels.values()) + [ctx.source], 1)
    yield info
    base = ["instance_type", "region"]
    values = [ctx.instance_type, ctx.region]
    if ctx.normalization_factor is not None:
        nf = _gauge(m.NORMALIZATION_FACTOR, "Normalization factor of the instance size.", base)
        nf.add_metric(values, ctx.normalization_factor)
        yield nf
    if ctx.price is not None:
        price = _gauge(m.PRICE, "On-demand Linux price of this instance type.", base)
        price.add_metric(values, ctx.price)
        yield price
    if ctx.graviton_price is not None:
        gprice = _gauge(m.GRAVITON_PRICE, "On-demand price of the Graviton equivalent.",
                        base + ["graviton_instance_type"])
        gprice.add_metric(values + [ctx.graviton_type], ctx.graviton_price)
        yield gprice
    accrued = (
        (m.INSTANCE_HOURS, "Hours this agent has run on the instance.", ctx.hours, True),
        (m.NORMALIZED_HOURS, "Normalized instance hours accrued.", ctx.normalized_hours,
         ctx.normalization_factor is not None),
        (m.COST, "On-demand cost accrued while the agent ran.", ctx.cost,
         ctx.price is not None),
        (m.GRAVITON_COST, "What the same hours cost on the Graviton equivalent.",
         ctx.graviton_cost, ctx.graviton_price is not None),
    )
    for name, doc, value, known in accrued:
        if known:
            fam = _counter(name, doc, base)
            fam.add_metric(values, value)
            yield fam


def _values(d) -> list[str]:
    dev = d.device
    return [dev.name, dev.serial, dev.kind]


def make_registry(state: AgentState, *, process: bool = True) -> CollectorRegistry:
    """A private registry: ours, plus the process and platform collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(state))
    if process:
        from prometheus_client import PlatformCollector, ProcessCollector

        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry
