"""The device dashboard: one host's NVMe devices, second by second where the agent allows."""

from __future__ import annotations

from grafanalib import core as g

from nitrometer import metrics as m
from nitrometer.dashboards.common import (
    DATASOURCE,
    Grid,
    dashboard,
    datasource_variable,
    query_variable,
    targets,
)

UID = "nitrometer-device"
SEL = 'instance=~"$instance", kind=~"$kind", device=~"$device"'
HOST_SEL = 'instance=~"$instance"'
BY_DEVICE = "instance, device"
RATE = "[$__rate_interval]"
WHO = "{{instance}} {{device}}"


def _rate(metric: str, extra: str = "") -> str:
    return f"sum by ({BY_DEVICE}{extra}) (rate({metric}{{{SEL}}}{RATE}))"


def _quantile(q: float, histogram: str, op: str, by: str = BY_DEVICE) -> str:
    return (f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({histogram}_bucket{{{SEL}, op=\"{op}\"}}{RATE})))")


def _series(title: str, description: str, specs, unit: str, **kw) -> g.TimeSeries:
    return g.TimeSeries(title=title, description=description, targets=targets(*specs),
                        unit=unit, legendDisplayMode="table", legendCalcs=["mean", "max"],
                        tooltipMode="multi", **kw)


def _heatmap(op: str) -> g.Heatmap:
    # A rate, not increase over $__interval: that window can hold a single scrape and be empty.
    expr = f"sum by (le) (rate({m.LATENCY}_bucket{{{SEL}, op=\"{op}\"}}{RATE}))"
    panel = g.Heatmap(
        title=f"{op.capitalize()} latency distribution",
        description=f"{op.capitalize()}s per second completing in each latency bucket; a band "
                    "creeping upward or a second band appearing means queueing or throttling.",
        targets=[g.Target(expr=expr, legendFormat="{{le}}", refId="A", format="heatmap",
                          datasource=DATASOURCE, intervalFactor=1)],
        dataFormat="tsbuckets", hideZeroBuckets=True,
        yAxis=g.YAxis(format="s", decimals=0), maxDataPoints=60,
    )
    return panel


def build() -> g.Dashboard:
    grid = Grid()
    grid.row("Throughput")
    grid.add(_series(
        "IOPS", "Read and write operations per second, averaged over the scrape window; "
        "compare with the 1-second peaks below and with the volume or instance IOPS limit.",
        [(_rate(m.READ_OPS), f"read {WHO}"), (_rate(m.WRITE_OPS), f"write {WHO}")], "iops"))
    grid.add(_series(
        "Throughput", "Bytes read and written per second; a flat line at a round number "
        "usually is a throughput limit.",
        [(_rate(m.READ_BYTES), f"read {WHO}"), (_rate(m.WRITE_BYTES), f"write {WHO}")], "Bps"))

    grid.row("Latency")
    mean = [(f"{_rate(f'{m.LATENCY}_sum', ', op')} / {_rate(f'{m.LATENCY}_count', ', op')}",
             f"{{{{op}}}} {WHO}")]
    grid.add(_series(
        "Mean latency", "Exact mean time per operation (total time / operations); rising "
        "without more IOPS means the device or a limit is slowing IO down.", mean, "s"), w=8)
    for op in m.OPS:
        grid.add(_series(
            f"{op.capitalize()} latency percentiles",
            f"p50, p99 and p99.9 {op} latency interpolated from the device's histogram; a "
            "p99.9 far above p50 means tail latency from queueing or throttling.",
            [(_quantile(q, m.LATENCY, op), f"p{label} {WHO}")
             for q, label in ((0.5, "50"), (0.99, "99"), (0.999, "99.9"))], "s"), w=8)
    for op in m.OPS:
        grid.add(_heatmap(op))
    for op in m.OPS:
        grid.add(_series(
            f"{op.capitalize()} p99 by IO size",
            f"p99 {op} latency per IO-size band (instance store only); large IOs slowing "
            "small ones shows as the small bands rising with the large.",
            [(_quantile(0.99, m.IO_SIZE_LATENCY, op, f"{BY_DEVICE}, io_size"),
              f"{{{{io_size}}}} {WHO}")], "s"))

    grid.row("Limits and queueing")
    grid.add(_series(
        "Queue length", "Outstanding IOs the device reports; a queue that keeps growing "
        "while IOPS stay flat means demand is above what the device or limit allows.",
        [(f"max by ({BY_DEVICE}) ({m.QUEUE_LENGTH}{{{SEL}}})", WHO)], "short"), w=8)
    grid.add(_series(
        "Time over a limit", "Share of the time spent over the volume or instance IOPS or "
        "throughput limit, exact to the microsecond the device reports; anything above zero "
        "means EC2 held IO back.",
        [(_rate(m.EXCEEDED_SECONDS, ", scope, limit"), f"{{{{scope}}}} {{{{limit}}}} {WHO}")],
        "percentunit", valueMin=0), w=8)
    grid.add(g.Stat(
        title="Seconds over a limit", format="s", reduceCalc="lastNotNull",
        description="Seconds in the dashboard's range counted as exceeded: at least 1 % of "
                    "the second (the agent's exceeded.min-share) over a limit. From 1-second "
                    "polling; a 1-minute average can hide these entirely.",
        targets=targets((f"sum by ({BY_DEVICE}) (increase({m.EXCEEDED_INTERVALS}{{{SEL}}}"
                         "[$__range]))", WHO), instant=True)), w=4)
    grid.add(g.Stat(
        title="Episodes over a limit", format="short", reduceCalc="lastNotNull",
        description="Separate runs of exceeded seconds that ended in the range (an episode "
                    "ends after exceeded.episode-end quiet seconds); many short episodes are "
                    "micro-bursts, few long ones are sustained demand.",
        targets=targets((f"sum by (scope, limit) (increase({m.EXCEEDED_EPISODES}{{{SEL}}}"
                         "[$__range]))", "{{scope}} {{limit}}"), instant=True)), w=4)

    grid.row("1-second peaks")
    grid.add(_series(
        "Peak IOPS", "Highest 1-second IOPS in the agent's peak window next to the scrape "
        "average; a peak far above the average is a burst that hit the limit unseen.",
        [(f"max by ({BY_DEVICE}, op) ({m.PEAK_IOPS}{{{SEL}}})", f"peak {{{{op}}}} {WHO}"),
         (f"{_rate(m.READ_OPS)} + {_rate(m.WRITE_OPS)}", f"average {WHO}")], "iops"), w=8)
    grid.add(_series(
        "Peak throughput", "Highest 1-second throughput in the peak window; compare with the "
        "throughput limit of the volume or instance.",
        [(f"max by ({BY_DEVICE}, op) ({m.PEAK_THROUGHPUT}{{{SEL}}})",
          f"peak {{{{op}}}} {WHO}")], "Bps"), w=8)
    grid.add(_series(
        "Peak latency", "Worst 1-second latency quantile in the peak window; spikes here with "
        "a calm p99 above are short stalls.",
        [(f"max by ({BY_DEVICE}, op, quantile) ({m.PEAK_LATENCY}{{{SEL}}})",
          f"{{{{op}}}} q{{{{quantile}}}} {WHO}")], "s"), w=8)

    grid.row("Host and agent")
    grid.add(_series(
        "Host CPU", "CPU busy and iowait share in the last second; a busy host can look like "
        "a slow device, high iowait with low device latency points at the host.",
        [(f"max by (instance) ({m.HOST_CPU_BUSY}{{{HOST_SEL}}})", "busy {{instance}}"),
         (f"max by (instance) ({m.HOST_CPU_IOWAIT}{{{HOST_SEL}}})", "iowait {{instance}}")],
        "percentunit", valueMin=0))
    grid.add(_series(
        "Device health", "Whether each device was read (1 up, 0 down), failed reads and counter "
        "resets per second; errors or resets mean gaps or restarts in this device's numbers.",
        [(f"sum by (instance, device, reason) (rate({m.DEVICE_ERRORS}{{{HOST_SEL}, "
          f"device=~\"$device\"}}{RATE}))", "{{reason}} {{instance}} {{device}}"),
         (_rate(m.COUNTER_RESETS), f"reset {WHO}"),
         (f"min by ({BY_DEVICE}) ({m.DEVICE_UP}{{{SEL}}})", f"up {WHO}")], "short"))

    variables = [
        datasource_variable(),
        query_variable("instance", "Instance", m.READ_OPS, "instance"),
        query_variable("kind", "Kind", m.READ_OPS, "kind", 'instance=~"$instance"'),
        query_variable("device", "Device", m.READ_OPS, "device",
                       'instance=~"$instance", kind=~"$kind"'),
    ]
    # An episode shows while the 0/1 gauge is up, or as a point when one ended between scrapes.
    episodes = (
        f"sum by (instance, device, scope, limit) (max_over_time({m.EXCEEDED_NOW}{{{SEL}}}"
        f"[$__interval])) > 0 or sum by (instance, device, scope, limit) "
        f"(increase({m.EXCEEDED_EPISODES}{{{SEL}}}{RATE})) > 0"
    )
    annotation = {
        "datasource": DATASOURCE, "enable": True, "iconColor": "red",
        "name": "Limit exceeded", "expr": episodes, "step": "$__interval",
        "titleFormat": "{{scope}} {{limit}} limit exceeded",
        "textFormat": "{{instance}} {{device}}", "tagKeys": "scope,limit,device",
        "useValueForTime": False,
    }
    return dashboard(
        "nitrometer: NVMe device", UID,
        "EC2 NVMe detailed performance statistics per device: IOPS, throughput, latency "
        "histograms, IO-size bands, limits exceeded and 1-second peaks.",
        ["ec2", "nvme"], grid, variables, [annotation])
