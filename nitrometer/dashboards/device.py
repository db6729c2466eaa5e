"""The device dashboard: one host's NVMe devices, second by second where the agent allows."""

from __future__ import annotations

from grafanalib import core as g

from nitrometer import metrics as m
from nitrometer.dashboards import workloads
from nitrometer.dashboards.common import (
    DATASOURCE,
    Grid,
    Heatmap,
    dashboard,
    datasource_variable,
    query_variable,
    targets,
)
from nitrometer.dashboards.rules import NEAR_LIMIT_SHARE

UID = "nitrometer-device"
SEL = 'instance=~"$instance", kind=~"$kind", device=~"$device"'
HOST_SEL = 'instance=~"$instance"'
KIND_SEL = 'instance=~"$instance", kind=~"$kind"'  # instance limits cover every device
BY_DEVICE = "instance, device"
RATE = "[$__rate_interval]"
WHO = "{{instance}} {{device}}"
KINDS = {"ebs": "EBS", "instance_store": "Instance store"}
# "% of limit" panels: orange from the near-limit alert's share, red at the limit.
LIMIT_STEPS = [{"color": "green", "value": None},
               {"color": "orange", "value": NEAR_LIMIT_SHARE},
               {"color": "red", "value": 1.0}]


def _rate(metric: str, extra: str = "") -> str:
    return f"sum by ({BY_DEVICE}{extra}) (rate({metric}{{{SEL}}}{RATE}))"


def _quantile(q: float, histogram: str, op: str, by: str = BY_DEVICE) -> str:
    return (f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({histogram}_bucket{{{SEL}, op=\"{op}\"}}{RATE})))")


def _series(title: str, description: str, specs, unit: str, **kw) -> g.TimeSeries:
    return g.TimeSeries(title=title, description=description, targets=targets(*specs),
                        unit=unit, legendDisplayMode="table", legendCalcs=["mean", "max"],
                        tooltipMode="multi", **kw)


def _heatmap(title: str, description: str, histogram: str, selector: str) -> Heatmap:
    # A rate, not increase over $__interval: that window can hold a single scrape and be empty.
    expr = f"sum by (le) (rate({histogram}_bucket{{{selector}}}{RATE}))"
    return Heatmap(
        title=title, description=description, unit="s", cell_unit="iops", maxDataPoints=60,
        targets=[g.Target(expr=expr, legendFormat="{{le}}", refId="A", format="heatmap",
                          datasource=DATASOURCE, intervalFactor=1)],
    )


def _latency_heatmaps(grid: Grid) -> None:
    """One heatmap per kind and op: EBS and instance-store latencies are never summed."""
    for kind, name in KINDS.items():
        for op in m.OPS:
            grid.add(_heatmap(
                f"{name} {op} latency distribution",
                f"{op.capitalize()}s per second of the selected {name} devices completing in "
                "each latency bucket; a band creeping upward or a second band appearing "
                "means queueing or throttling.",
                m.LATENCY, f'{SEL}, kind="{kind}", op="{op}"'), w=6)
    for op in m.OPS:
        panel = _heatmap(
            f"Instance store {op} latency, IO size $io_size",
            f"{op.capitalize()}s per second of one IO-size band (instance store only) "
            "completing in each latency bucket, one panel per band: large IOs slowing small "
            "ones shows as the small bands' cells moving up with the large.",
            m.IO_SIZE_LATENCY,
            f'{SEL}, kind="instance_store", op="{op}", io_size=~"$io_size"')
        panel.repeat = g.Repeat(direction="h", variable="io_size", maxPerRow=5)
        grid.add(panel, w=24)


def _share_of_limit(title: str, description: str, specs) -> g.TimeSeries:
    return _series(title, description, specs, "percentunit", valueMin=0,
                   thresholdsStyleMode="line", thresholds=LIMIT_STEPS)


def _headroom(grid: Grid) -> None:
    """Demand as a share of the limit it runs under: how much room is left before EC2 holds
    IO back."""
    grid.row("Headroom: how close to the limit")
    volume = {"iops": ((m.READ_OPS, m.WRITE_OPS), m.VOLUME_IOPS_LIMIT, "IOPS"),
              "throughput": ((m.READ_BYTES, m.WRITE_BYTES), m.VOLUME_THROUGHPUT_LIMIT,
                             "throughput")}
    for counters, gauge, name in volume.values():
        demand = " + ".join(_rate(c) for c in counters)
        grid.add(_share_of_limit(
            f"Volume {name}, % of provisioned",
            f"Reads and writes together as a share of each EBS volume's provisioned {name}; "
            f"above {NEAR_LIMIT_SHARE:.0%} for long the near-limit alert fires, at 100 % EC2 "
            "holds IO back (see Time over a limit).",
            [(f"({demand}) / on ({BY_DEVICE}) max by ({BY_DEVICE}) ({gauge}{{{SEL}}} > 0)",
              WHO)]), w=6)
    # Published per op: instance-store IOPS; for reads and writes together: EBS IOPS and
    # throughput (the guide gives no instance-store throughput).
    instance = {"IOPS": ({"read": m.READ_OPS, "write": m.WRITE_OPS}, m.INSTANCE_IOPS_LIMIT,
                         True),
                "throughput": ({"read": m.READ_BYTES, "write": m.WRITE_BYTES},
                               m.INSTANCE_THROUGHPUT_LIMIT, False)}
    for name, (counters, gauge, per_op) in instance.items():
        specs = [(f"sum by (instance, kind) (rate({counter}{{{KIND_SEL}}}{RATE})) / on "
                  f"(instance, kind) max by (instance, kind) "
                  f"({gauge}{{{KIND_SEL}, op=\"{op}\"}} > 0)",
                  f"{op} {{{{kind}}}} {{{{instance}}}}")
                 for op, counter in counters.items()] if per_op else []
        both = " + ".join(f"sum by (instance, kind) (rate({c}{{{KIND_SEL}}}{RATE}))"
                          for c in counters.values())
        specs.append((f"({both}) / on (instance, kind) max by (instance, kind) "
                      f"({gauge}{{{KIND_SEL}, op=\"total\"}} > 0)",
                      "total {{kind}} {{instance}}"))
        grid.add(_share_of_limit(
            f"Instance {name}, % of the instance limit",
            f"All of the instance's devices of a kind together as a share of the instance "
            f"type's {name} limit for that kind, as the EC2 guide publishes it: per op for "
            "instance store, reads and writes together (total) for EBS; not narrowed by the "
            "device selection, since the limit is shared.", specs), w=6)


def _health(grid: Grid) -> None:
    grid.row("Device health")
    grid.add(_series(
        "Read errors by reason", "Failed reads of each device's statistics per second, by "
        "reason; the device's numbers have a gap while they last.",
        [(f"sum by (instance, device, reason) (rate({m.DEVICE_ERRORS}{{{HOST_SEL}, "
          f"device=~\"$device\"}}{RATE}))", "{{reason}} {{instance}} {{device}}")],
        "short", valueMin=0), w=8)
    grid.add(_series(
        "Device up", "1 while the agent reads the device, 0 while its reads fail; a device "
        "that is gone (detached) has no line.",
        [(f"min by ({BY_DEVICE}) ({m.DEVICE_UP}{{{SEL}}})", WHO)], "none", valueMin=0), w=8)
    grid.add(_series(
        "Counter resets, glitches and layout changes", "Breaks in a device's counters in the "
        "window: a reset (counters went back), a glitch (one field went back while the "
        "others grew) or a new layout (bins or bands changed); the agent starts a new "
        "baseline, so the interval around one is not counted.",
        [(f"sum by ({BY_DEVICE}) (increase({m.COUNTER_RESETS}{{{SEL}}}{RATE}))",
          f"reset {WHO}"),
         (f"sum by ({BY_DEVICE}, field) (increase({m.GLITCHES}{{{SEL}}}{RATE}))",
          f"glitch {{{{field}}}} {WHO}"),
         (f"sum by ({BY_DEVICE}) (increase({m.LAYOUT_CHANGES}{{{SEL}}}{RATE}))",
          f"layout {WHO}")], "short", valueMin=0), w=8)


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
    _latency_heatmaps(grid)
    for op in m.OPS:
        grid.add(_series(
            f"{op.capitalize()} p99 by IO size",
            f"p99 {op} latency per IO-size band (instance store only); large IOs slowing "
            "small ones shows as the small bands rising with the large.",
            [(_quantile(0.99, m.IO_SIZE_LATENCY, op, f"{BY_DEVICE}, io_size"),
              f"{{{{io_size}}}} {WHO}")], "s"))

    _headroom(grid)

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
        "Peak p99 latency", "Worst 1-second p99 latency in the peak window; spikes here with "
        "a calm p99 above are short stalls.",
        [(f"max by ({BY_DEVICE}, op) ({m.PEAK_LATENCY_P99}{{{SEL}}})",
          f"{{{{op}}}} p99 {WHO}")], "s"), w=8)

    workloads.device_panels(grid, SEL, RATE)
    _health(grid)

    grid.row("Host and agent")
    grid.add(_series(
        "Host CPU", "CPU busy and iowait share in the last second; a busy host can look like "
        "a slow device, high iowait with low device latency points at the host.",
        [(f"max by (instance) ({m.HOST_CPU_BUSY}{{{HOST_SEL}}})", "busy {{instance}}"),
         (f"max by (instance) ({m.HOST_CPU_IOWAIT}{{{HOST_SEL}}})", "iowait {{instance}}")],
        "percentunit", valueMin=0))
    grid.add(_series(
        "Failed ticks and overruns", "Per agent: ticks that raised an error (logged; sampling "
        "goes on) and ticks skipped because a poll missed its 1 s deadline; either means "
        "gaps in every device's 1-second data.",
        [(f"sum by (instance) (increase({m.TICK_ERRORS}{{{HOST_SEL}}}{RATE}))",
          "failed {{instance}}"),
         (f"sum by (instance) (increase({m.POLL_OVERRUNS}{{{HOST_SEL}}}{RATE}))",
          "overruns {{instance}}")], "short", valueMin=0))

    variables = [
        datasource_variable(),
        query_variable("instance", "Instance", m.READ_OPS, "instance"),
        query_variable("kind", "Kind", m.READ_OPS, "kind", 'instance=~"$instance"'),
        query_variable("device", "Device", m.READ_OPS, "device",
                       'instance=~"$instance", kind=~"$kind"'),
        query_variable("io_size", "IO size", f"{m.IO_SIZE_LATENCY}_count", "io_size",
                       'instance=~"$instance"'),
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
