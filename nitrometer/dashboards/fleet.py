"""The fleet dashboard: which hosts and devices hit EC2 limits, by type, and agent health.

Built on the recording rules (nitrometer.dashboards.rules) so it stays cheap with thousands
of hosts; the rules file must be loaded into the Prometheus this dashboard reads.
"""

from __future__ import annotations

from grafanalib import core as g

from nitrometer import metrics as m
from nitrometer.dashboards import rules as r
from nitrometer.dashboards import workloads
from nitrometer.dashboards.common import (
    Grid,
    custom_variable,
    dashboard,
    datasource_variable,
    info_join,
    query_variable,
    targets,
)

UID = "nitrometer-fleet"
SEL = 'family=~"$family", instance_type=~"$instance_type"'
RANGE = "[$__range]"


def _seconds_in_range(record: str, by: str) -> str:
    """Exceeded seconds in the range, from the recorded per-second share."""
    return f"sum by ({by}) (avg_over_time({record}{{{SEL}}}{RANGE})) * $__range_s"


def _table(title: str, description: str, specs, unit: str) -> g.Table:
    return g.Table(title=title, description=description, unit=unit,
                   targets=targets(*specs, instant=True, fmt=g.TABLE_TARGET_FORMAT),
                   transformations=[{"id": "merge", "options": {}}],
                   sortBy=[g.TableSortByField(displayName="Value", desc=True)])


def _bars(title: str, description: str, specs, unit: str) -> g.BarGauge:
    # grafanalib writes the unit where Grafana 6 read it (options.fieldOptions): it goes in
    # fieldConfig too. One threshold step: no red at grafanalib's default of 80.
    return g.BarGauge(title=title, description=description, format=unit, min=0, max=None,
                      orientation=g.ORIENTATION_HORIZONTAL, calc="lastNotNull",
                      displayMode=g.GAUGE_DISPLAY_MODE_GRADIENT,
                      thresholds=[g.Threshold("green", 0, 0.0)],
                      extraJson={"fieldConfig": {"defaults": {"unit": unit, "min": 0}}},
                      targets=targets(*specs, instant=True))


def _series(title: str, description: str, specs, unit: str) -> g.TimeSeries:
    return g.TimeSeries(title=title, description=description, targets=targets(*specs),
                        unit=unit, legendDisplayMode="table", legendCalcs=["mean", "max"],
                        tooltipMode="multi")


def _headroom(grid: Grid) -> None:
    """Who is about to run out of room: the highest 5-minute share of a limit in the range."""
    grid.row("Headroom: closest to their limits")
    closest = "topk($k, {})"
    peak = f"max_over_time({{}}{RANGE})"
    grid.add(_table(
        "Volumes closest to their provisioned limits", "The $k EBS volumes whose demand came "
        "closest to their provisioned IOPS or throughput (highest 5-minute share in the "
        f"range; 1 = at the limit, above {r.NEAR_LIMIT_SHARE:.0%} for "
        f"{r.NEAR_LIMIT_MINUTES} minutes alerts): raise these before they are held back.",
        [(closest.format(info_join(peak.format(r.VOLUME_UTILISATION), "instance_type",
                                   "$__range", SEL)), "")], "percentunit"))
    grid.add(_table(
        "Instances closest to their instance limits", "The $k instances whose devices of a "
        "kind together came closest to the instance type's IOPS or throughput limit for "
        "that kind and op (highest 5-minute share in the range): candidates for a larger "
        "type before any single volume is full.",
        [(closest.format(info_join(peak.format(r.INSTANCE_UTILISATION), "instance_type",
                                   "$__range", SEL)), "")], "percentunit"))
    grid.add(_series(
        "Closest to a limit by instance type", "The highest share of a limit any volume or "
        "instance of each type is at, over time: a type that keeps climbing toward 1 is "
        "running out of room.",
        [(f"max by (instance_type, limit) "
          f"({info_join(r.VOLUME_UTILISATION, 'instance_type', '1h', SEL)})",
          "volume {{limit}} {{instance_type}}"),
         (f"max by (instance_type, limit) "
          f"({info_join(r.INSTANCE_UTILISATION, 'instance_type', '1h', SEL)})",
          "instance {{limit}} {{instance_type}}")], "percentunit"), w=24)


def build() -> g.Dashboard:
    grid = Grid()
    exceeded_instance = r.INSTANCE_RATES[m.EXCEEDED_INTERVALS]
    grid.row("Who hits EC2 limits")
    grid.add(_table(
        "Instances most over a limit", "The $k instances with the most device-seconds "
        "counted as exceeded (at least 1 % of the second over an IOPS or throughput limit) "
        "in the range: candidates for a larger type or volume.",
        [(f"topk($k, {_seconds_in_range(exceeded_instance, 'instance, instance_type')})", "")],
        "s"))
    grid.add(_table(
        "Devices most over a limit", "The $k devices with the most seconds counted as "
        "exceeded in the range; an EBS volume here wants more provisioned IOPS or throughput.",
        [(f"topk($k, {_seconds_in_range(r.DEVICE_EXCEEDED_ANY, r.DEVICE_KEY + ', instance_type')})",
          "")], "s"))
    workloads.fleet_table(grid, SEL, _table)
    grid.add(_bars(
        "Time over a limit by instance type", "Device-seconds over a limit per instance type "
        "in the range: types that run into their limits most need right-sizing first.",
        [(_seconds_in_range(exceeded_instance, "instance_type"), "{{instance_type}}")], "s"))
    grid.add(_bars(
        "Time over a limit by family", "Device-seconds over a limit per instance family in "
        "the range: a family that is always throttled may suit a storage-optimized one.",
        [(_seconds_in_range(exceeded_instance, "family"), "{{family}}")], "s"))

    _headroom(grid)

    grid.row("Latency by instance type")
    p99 = f'quantile="0.99", {SEL}'
    grid.add(_series(
        "Worst instance p99 by type", "Highest per-instance p99 latency among the instances "
        "of each type: one bad host shows here even when the type as a whole looks fine.",
        [(f"max by (instance_type, op) ({r.INSTANCE_LATENCY_QUANTILE}{{{p99}}})",
          "{{instance_type}} {{op}}")], "s"))
    grid.add(_series(
        "Pooled p99 by type", "p99 latency over all devices of all instances of each type "
        "(histograms merged before the quantile): what a typical IO on that type sees.",
        [(f"max by (instance_type, op) ({r.TYPE_LATENCY_QUANTILE}{{{p99}}})",
          "{{instance_type}} {{op}}")], "s"))

    grid.row("Fleet and agents")
    grid.add(g.PieChartv2(
        title="Devices per kind", description="NVMe devices the agents watch, by kind; a drop "
        "means volumes detached or agents stopped seeing them.",
        targets=targets((f"sum by (kind) ({m.DEVICES})", "{{kind}}"), instant=True),
        reduceOptionsCalcs=["lastNotNull"], legendDisplayMode="table", unit="short"), w=6)
    agents = (f"max by (instance, job) (max_over_time({m.BUILD_INFO}[1h]))")
    grid.add(_series(
        "Agents reporting", "Share of scrapes that succeeded per agent (1 = all); below 1 "
        "means the host, network or agent is failing and its devices are unwatched.",
        [(f"avg_over_time(up[$__rate_interval]) and on (instance, job) {agents}",
          "{{instance}}")], "percentunit"), w=9)
    grid.add(_series(
        "Poll problems", "Device read errors, loop overruns (a poll that missed its 1 s "
        "deadline) and the p99 poll time; sustained overruns mean gaps in 1-second data.",
        [(f"sum by (instance, reason) (rate({m.DEVICE_ERRORS}[$__rate_interval]))",
          "errors {{reason}} {{instance}}"),
         (f"sum by (instance) (rate({m.POLL_OVERRUNS}[$__rate_interval]))",
          "overruns {{instance}}"),
         (f"histogram_quantile(0.99, sum by (instance, le) "
          f"(rate({m.POLL_DURATION}_bucket[$__rate_interval])))", "p99 poll s {{instance}}")],
        "short"), w=9)

    variables = [
        datasource_variable(),
        query_variable("family", "Family", m.INSTANCE_INFO, "family"),
        query_variable("instance_type", "Instance type", m.INSTANCE_INFO, "instance_type",
                       'family=~"$family"'),
        custom_variable("k", "Top", [5, 10, 20, 50], 10),
    ]
    return dashboard(
        "nitrometer: fleet", UID,
        "Which instances and devices run into EC2 IOPS and throughput limits, latency by "
        "instance type, and whether every agent is reporting. Needs the nitrometer "
        "recording rules.", ["ec2", "nvme", "fleet"], grid, variables)
