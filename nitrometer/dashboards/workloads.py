"""Who drove it: the workload panels of the device and fleet dashboards."""

from __future__ import annotations

from grafanalib import core as g

from nitrometer import metrics as m
from nitrometer.dashboards.common import TARGET, Grid, info_join, targets

LIMIT_LEGEND = "limit {{instance}} {{device}}"
# The limit line stays a line over the stacked workloads: not stacked, dashed, red.
LIMIT_OVERRIDE = {
    "matcher": {"id": "byRegexp", "options": "^limit .*"},
    "properties": [
        {"id": "custom.stacking", "value": {"mode": "none", "group": "A"}},
        {"id": "custom.fillOpacity", "value": 0},
        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
        {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
    ],
}


def device_panels(grid: Grid, sel: str, rate: str) -> None:
    """Top workloads' IOPS stacked per device, under the volume's IOPS limit."""
    grid.row("Who: workloads on the device")
    ops = (f"sum by (instance, device, workload) (rate({m.WORKLOAD_READ_OPS}{{{sel}}}{rate}) "
           f"+ rate({m.WORKLOAD_WRITE_OPS}{{{sel}}}{rate}))")
    grid.add(g.TimeSeries(
        title="Who: IOPS by workload",
        description="Reads and writes per second of the top workloads on each device (cgroups:"
        " systemd services, containers, pods; the rest as other), stacked, with the EBS "
        "volume's IOPS limit as a dashed line: a band that fills up to the line is the "
        "workload that drove the device to its limit.",
        targets=targets((ops, "{{workload}} {{instance}} {{device}}"),
                        (f"max by (instance, device) ({m.VOLUME_IOPS_LIMIT}{{{sel}}})",
                         LIMIT_LEGEND)),
        unit="iops", stacking={"mode": "normal", "group": "A"}, fillOpacity=40,
        legendDisplayMode="table", legendCalcs=["mean", "max"], tooltipMode="multi",
        valueMin=0, overrides=[LIMIT_OVERRIDE]), w=16)
    grid.add(g.BarGauge(
        title="Who: share of the last exceeded episode",
        description="Each workload's share of the device's ops in the intervals that counted "
        "as exceeded, over the current or last episode of the limit.",
        format="percentunit", min=0, max=1, orientation=g.ORIENTATION_HORIZONTAL,
        calc="lastNotNull", displayMode=g.GAUGE_DISPLAY_MODE_GRADIENT,
        thresholds=[g.Threshold("green", 0, 0.0)],
        extraJson={"fieldConfig": {"defaults": {"unit": "percentunit", "min": 0, "max": 1}}},
        targets=targets((f"max by (instance, device, workload) "
                         f"({m.WORKLOAD_EXCEEDED_SHARE}{{{sel}}})",
                         "{{workload}} {{device}}"), instant=True)), w=8)


def fleet_table(grid: Grid, sel: str, table) -> None:
    """The workloads behind the most exceeded seconds across the fleet."""
    seconds = (f"sum by ({TARGET}, device, workload) "
               f"(increase({m.WORKLOAD_EXCEEDED_SECONDS}[$__range]))")
    grid.add(table(
        "Workloads behind the most exceeded seconds",
        "Seconds counted as exceeded in the range, each split among the workloads by their "
        "share of the device's ops in it, largest first: the services, containers and pods "
        "that drove devices to their limits.",
        [(f"topk($k, {info_join(seconds, 'instance_type', '$__range', sel)})", "")], "s"))
