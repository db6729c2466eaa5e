"""The Graviton savings dashboard, live from the agents' cost and normalized-hours counters.

Same model as nitrometer.savings: for eligible x86 instances (x86_64 with a Graviton
equivalent, i.e. a Graviton cost counter), base savings = cost - Graviton cost; additional
savings from performance = Graviton cost x NIH reduction; total = base + additional. The NIH
reduction is the slider's, or (variable nih_source) the one measured from the fleet over the
range exactly as `nitrometer savings --measured` measures it (nitrometer.dashboards.nih).
"""

from __future__ import annotations

from grafanalib import core as g

from nitrometer import metrics as m
from nitrometer.dashboards import nih, rules
from nitrometer.dashboards.common import (
    TARGET,
    Grid,
    custom_variable,
    dashboard,
    datasource_variable,
    info_join,
    query_variable,
    targets,
)

UID = "nitrometer-graviton-savings"
X86 = "x86_64"
X86_SEL = f'arch="{X86}"'
GRAVITON_SEL = f'arch!="{X86}"'
RANGE = "[$__range]"
SEL = 'region=~"$region"'
NIH_PCT = "$nih"


def _per_agent(metric: str, window: str = RANGE, fn: str = "increase") -> str:
    # Summed per agent so counters with extra labels (graviton_instance_type) line up.
    return f"sum by ({TARGET}) ({fn}({metric}{window}))"


def _agents(selector: str, window: str = RANGE) -> str:
    """One series per agent whose info matched selector at any time in the window."""
    return f"max by ({TARGET}) (max_over_time({m.INSTANCE_INFO}{{{selector}}}{window}))"


def _eligible(expr: str, window: str = RANGE) -> str:
    return f"({expr}) and on ({TARGET}) {_agents(f'{X86_SEL}, {SEL}', window)}"


def base_savings() -> str:
    # The subtraction keeps only agents that have a Graviton cost, i.e. an equivalent.
    cost, graviton = _per_agent(m.COST), _per_agent(m.GRAVITON_COST)
    return f"sum({_eligible(f'{cost} - {graviton}')})"


def eligible_graviton_cost() -> str:
    return f"sum({_eligible(_per_agent(m.GRAVITON_COST))})"


def measured_query() -> nih.Query:
    """The measured reduction over the dashboard's range, as `nitrometer savings --measured
    --min-hosts $min_hosts --min-hours $min_hours` computes it."""
    return nih.Query(RANGE, SEL, min_hosts="$min_hosts", min_hours="$min_hours")


def _source_is(source: str) -> str:
    """Non-empty when the $nih_source variable is `source`."""
    return (f'(label_replace(vector(1), "source", "$nih_source", "", "") and on (source) '
            f'label_replace(vector(1), "source", "{source}", "", ""))')


def nih_reduction() -> str:
    """The NIH reduction the savings use, in %: the slider, or the measured value (empty when
    nothing can be measured, so the savings show no number rather than a wrong one)."""
    measured = _source_is("measured")
    return (f"(({measured_query().measured()}) and on () {measured}) or on () "
            f"(vector({NIH_PCT}) unless on () {measured})")


def additional_savings() -> str:
    return f"{eligible_graviton_cost()} * ({nih_reduction()}) / 100"


def total_savings() -> str:
    return f"{base_savings()} + {additional_savings()}"


def _stat(title: str, description: str, expr: str, unit: str = "currencyUSD") -> g.Stat:
    return g.Stat(title=title, description=description, format=unit, reduceCalc="lastNotNull",
                  graphMode="none", targets=targets((expr, title), instant=True))


def _by(labels: str, metric: str, per_hour: bool = True) -> str:
    rate = f"sum by ({TARGET}) (rate({metric}[$__rate_interval]))"
    joined = info_join(rate, labels, "$__rate_interval", SEL)
    return f"sum by ({labels}) ({joined}){' * 3600' if per_hour else ''}"


def _group_table(query: nih.Query) -> g.Table:
    """Per job over the range: the measured reductions, as `savings --measured` lists them."""
    specs = [(query.group_reduction(nih.EQUAL_LOAD), "at equal load %"),
             (query.group_bound(-1, nih.EQUAL_LOAD), "low %"),
             (query.group_bound(1, nih.EQUAL_LOAD), "high %"),
             (query.group_reduction(nih.RAW), "raw %"),
             (f"count by ({nih.GROUP}) ({query.hosts(nih.GRAVITON, nih.RAW)})", "Graviton hosts"),
             (f"count by ({nih.GROUP}) ({query.hosts(nih.X86, nih.RAW)})", "x86 hosts")]
    return g.Table(
        title="Measured NIH reduction by job", unit="short",
        description="Each job over the time range: the reduction at equal load with its 90 % "
                    "interval (per-host spread), the raw reduction, and the hosts with work on "
                    "each side. Jobs with one architecture only show no reduction.",
        targets=targets(*specs, instant=True, fmt=g.TABLE_TARGET_FORMAT),
        transformations=_one_row_per_series(specs))


def _one_row_per_series(specs) -> list[dict]:
    """Table transformations: the instant queries merged into one row per series, each
    value column named after its query."""
    return [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {"Time": True},
            "renameByName": {f"Value #{chr(ord('A') + i)}": name
                             for i, (_, name) in enumerate(specs)}}},
    ]


def build() -> g.Dashboard:
    grid = Grid()
    grid.row("Potential savings over the dashboard's time range")
    grid.add(_stat(
        "Potential Graviton Base Savings", "On-demand cost of eligible x86 instances minus what "
        "the same hours cost on the equivalent Graviton type, over the time range.",
        base_savings()), w=6)
    grid.add(_stat(
        "Estimated Additional Savings Due to Performance", "Graviton cost of the eligible "
        "hours times the NIH reduction (the slider, or the measured value when 'NIH reduction "
        "from' is measured; empty when nothing can be measured): fewer instance hours for the "
        "same work.",
        additional_savings()), w=6)
    grid.add(_stat(
        "Total Potential Graviton Savings", "Base plus additional savings over the time "
        "range at the NIH reduction chosen above.", total_savings()), w=6)
    query = measured_query()
    grid.add(g.Stat(
        title="NIH reduction: measured and assumed", format="percent", graphMode="none",
        reduceCalc="lastNotNull", textMode="value_and_name", decimals=1,
        description="Measured over the time range: how many fewer normalized hours Graviton "
                    "hosts need for the same IO operations as x86 hosts of the same job, at "
                    "equal CPU load (raw work per normalized hour when no job has CPU "
                    "counters on both sides), the jobs weighted by their x86 normalized "
                    "hours; the same figure and interval as `nitrometer savings --measured` "
                    "(docs/savings.md). Low and high: a 90 % interval from the spread "
                    "between hosts (normal approximation). Assumed: the slider. "
                    "'NIH reduction from' chooses which the savings use.",
        targets=targets((query.measured(), "measured"), (query.bound(-1), "low (90 %)"),
                        (query.bound(1), "high (90 %)"), (f"vector({NIH_PCT})", "assumed"),
                        instant=True)), w=6)
    grid.add(g.TimeSeries(
        title="Measured NIH reduction, rolling hour",
        description="The recording rules' measured reduction over the last hour: the fleet "
                    "(at equal load, else raw) with its 90 % interval from the per-host spread, "
                    "and each job at equal load. A steady line means a steady gain; a jump "
                    "means the mix of hosts or load changed.",
        targets=targets((f"sum({rules.NIH_FLEET})", "fleet"),
                        (f"sum({rules.NIH_FLEET_BOUNDS[-1]})", "fleet low"),
                        (f"sum({rules.NIH_FLEET_BOUNDS[1]})", "fleet high"),
                        (f"sum by (job) ({rules.NIH_GROUP_REDUCTION[nih.EQUAL_LOAD]})",
                         "{{job}}")),
        unit="percent", legendDisplayMode="table", legendCalcs=["mean", "lastNotNull"]), w=12)
    grid.add(_group_table(query), w=12)

    grid.row("Cost and normalized hours")
    window = "[$__rate_interval]"
    grid.add(g.TimeSeries(
        title="On-demand cost by family and architecture",
        description="Cost accrued per hour by family and architecture; the x86 families with "
                    "the most cost are where a Graviton move saves most.",
        targets=targets((_by("family, arch", m.COST), "{{family}} {{arch}}")),
        unit="currencyUSD", stacking={"mode": "normal"}, fillOpacity=30,
        legendDisplayMode="table", legendCalcs=["mean", "max"]))
    grid.add(g.TimeSeries(
        title="Normalized hours by family and architecture",
        description="Normalized instance hours (NIH) accrued per hour: instance size weighted "
                    "by the AWS normalization factor, the unit savings are counted in.",
        targets=targets((_by("family, arch", m.NORMALIZED_SECONDS, per_hour=False),
                         "{{family}} {{arch}}")),
        unit="short", stacking={"mode": "normal"}, fillOpacity=30,
        legendDisplayMode="table", legendCalcs=["mean", "max"]))
    nih_graviton = (f"sum(({_per_agent(m.NORMALIZED_SECONDS)}) and on ({TARGET}) "
                    f"{_agents(f'{GRAVITON_SEL}, {SEL}')})")
    nih_all = f"sum(({_per_agent(m.NORMALIZED_SECONDS)}) and on ({TARGET}) {_agents(SEL)})"
    grid.add(g.GaugePanel(
        title="Normalized hours already on Graviton",
        description="Share of the range's normalized hours that ran on Graviton; low means "
                    "most of the fleet is still x86 and the savings above are still open.",
        format="percentunit", min=0, max=1, calc="lastNotNull",
        thresholds=[g.Threshold("green", 0, 0.0)],  # not grafanalib's red at 80 (of 1)
        targets=targets((f"({nih_graviton} or vector(0)) / {nih_all}", "Graviton share"),
                        instant=True)), w=6)
    grid.add(g.TimeSeries(
        title="Cost on x86 and its Graviton equivalent",
        description="Cost per hour of eligible x86 instances next to the same hours priced on "
                    "Graviton; the gap is the base saving accruing every hour.",
        targets=targets(
            (f"sum({_eligible(_per_agent(m.COST, window, 'rate'), window)}) * 3600",
             "x86 cost"),
            (f"sum({_eligible(_per_agent(m.GRAVITON_COST, window, 'rate'), window)}) * 3600",
             "Graviton equivalent")),
        unit="currencyUSD", legendDisplayMode="table", legendCalcs=["mean"]), w=18)

    grid.row("Details")
    per_type = "instance_type, arch, family"
    columns = [  # the time counters in seconds, shown in hours
        ("hours", m.INSTANCE_SECONDS, " / 3600"),
        ("normalized hours", m.NORMALIZED_SECONDS, " / 3600"),
        ("cost", m.COST, ""), ("Graviton cost", m.GRAVITON_COST, ""),
    ]
    specs = [(f"sum by ({per_type}) ({info_join(_per_agent(metric), per_type, '$__range', SEL)})"
              f"{scale}", name) for name, metric, scale in columns]
    specs.append((f"count by ({per_type}) (last_over_time({m.INSTANCE_INFO}{{{SEL}}}{RANGE}))",
                  "instances"))
    table = g.Table(
        title="By instance type", unit="short",
        description="Per instance type over the range: instances, hours, normalized hours, "
                    "on-demand cost and the Graviton-equivalent cost of the same hours.",
        targets=targets(*specs, instant=True, fmt=g.TABLE_TARGET_FORMAT),
        transformations=_one_row_per_series(specs))
    grid.add(table, w=24, h=10)

    variables = [
        datasource_variable(),
        query_variable("region", "Region", m.INSTANCE_INFO, "region"),
        custom_variable("nih", "Estimated NIH reduction %", list(range(0, 41)), 10),
        custom_variable("nih_source", "NIH reduction from", ["slider", "measured"], "slider"),
        custom_variable("min_hosts", "Measured: min hosts a side", [1, 2, 3, 5, 10],
                        nih.MIN_HOSTS),
        custom_variable("min_hours", "Measured: min hours a side", [0, 1, 24, 168],
                        nih.MIN_HOURS),
    ]
    return dashboard(
        "nitrometer: Graviton savings", UID,
        "Potential savings from moving eligible x86 instances to Graviton, in normalized "
        "instance hours, live from the agents' cost counters.",
        ["ec2", "graviton", "finops"], grid, variables)
