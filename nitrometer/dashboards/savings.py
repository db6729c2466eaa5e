"""The Graviton savings dashboard, live from the agents' cost and normalized-hours counters.

Same model as nitrometer.savings: for eligible x86 instances (x86_64 with a Graviton
equivalent, i.e. a Graviton cost counter), base savings = cost - Graviton cost; additional
savings from performance = Graviton cost x NIH reduction; total = base + additional.
"""

from __future__ import annotations

from grafanalib import core as g

from nitrometer import metrics as m
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


def additional_savings() -> str:
    return f"{eligible_graviton_cost()} * {NIH_PCT} / 100"


def total_savings() -> str:
    return f"{base_savings()} + {additional_savings()}"


def _work_per_nih(arch_selector: str) -> str:
    work = f"{_per_agent(m.READ_OPS)} + {_per_agent(m.WRITE_OPS)}"
    agents = _agents(f"{arch_selector}, {SEL}")
    return (f"sum(({work}) and on ({TARGET}) {agents}) / "
            f"sum(({_per_agent(m.NORMALIZED_HOURS)}) and on ({TARGET}) {agents})")


def measured_nih_reduction() -> str:
    """1 - x86 work per NIH / Graviton work per NIH, in %: fewer NIH for the same IO ops."""
    return f"(1 - ({_work_per_nih(X86_SEL)}) / ({_work_per_nih(GRAVITON_SEL)})) * 100"


def _stat(title: str, description: str, expr: str, unit: str = "currencyUSD") -> g.Stat:
    return g.Stat(title=title, description=description, format=unit, reduceCalc="lastNotNull",
                  graphMode="none", targets=targets((expr, title), instant=True))


def _by(labels: str, metric: str, per_hour: bool = True) -> str:
    rate = f"sum by ({TARGET}) (rate({metric}[$__rate_interval]))"
    joined = info_join(rate, labels, "$__rate_interval", SEL)
    return f"sum by ({labels}) ({joined}){' * 3600' if per_hour else ''}"


def build() -> g.Dashboard:
    grid = Grid()
    grid.row("Potential savings over the dashboard's time range")
    grid.add(_stat(
        "Potential Graviton Base Savings", "On-demand cost of eligible x86 instances minus what "
        "the same hours cost on the equivalent Graviton type, over the time range.",
        base_savings()), w=6)
    grid.add(_stat(
        "Estimated Additional Savings Due to Performance", "Graviton cost of the eligible "
        "hours times the assumed NIH reduction: fewer instance hours for the same work.",
        additional_savings()), w=6)
    grid.add(_stat(
        "Total Potential Graviton Savings", "Base plus additional savings over the time "
        "range at the NIH reduction chosen above.", total_savings()), w=6)
    grid.add(g.Stat(
        title="NIH reduction: measured and assumed", format="percent", graphMode="none",
        reduceCalc="lastNotNull", textMode="value_and_name",
        description="Measured: how many fewer normalized hours Graviton hosts need for the same "
                    "IO operations as x86 hosts in this fleet; empty without both. Assumed: "
                    "the value chosen above. A measured value far below the assumed one means "
                    "the estimate is optimistic.",
        targets=targets((measured_nih_reduction(), "measured"), (f"vector({NIH_PCT})",
                                                                 "assumed"), instant=True)), w=6)

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
        targets=targets((_by("family, arch", m.NORMALIZED_HOURS), "{{family}} {{arch}}")),
        unit="short", stacking={"mode": "normal"}, fillOpacity=30,
        legendDisplayMode="table", legendCalcs=["mean", "max"]))
    nih_graviton = (f"sum(({_per_agent(m.NORMALIZED_HOURS)}) and on ({TARGET}) "
                    f"{_agents(f'{GRAVITON_SEL}, {SEL}')})")
    nih_all = f"sum(({_per_agent(m.NORMALIZED_HOURS)}) and on ({TARGET}) {_agents(SEL)})"
    grid.add(g.GaugePanel(
        title="Normalized hours already on Graviton",
        description="Share of the range's normalized hours that ran on Graviton; low means "
                    "most of the fleet is still x86 and the savings above are still open.",
        format="percentunit", min=0, max=1, calc="lastNotNull",
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
    columns = [
        ("hours", m.INSTANCE_HOURS), ("normalized hours", m.NORMALIZED_HOURS),
        ("cost", m.COST), ("Graviton cost", m.GRAVITON_COST),
    ]
    specs = [(f"sum by ({per_type}) ({info_join(_per_agent(metric), per_type, '$__range', SEL)})",
              name) for name, metric in columns]
    specs.append((f"count by ({per_type}) (last_over_time({m.INSTANCE_INFO}{{{SEL}}}{RANGE}))",
                  "instances"))
    table = g.Table(
        title="By instance type", unit="short",
        description="Per instance type over the range: instances, hours, normalized hours, "
                    "on-demand cost and the Graviton-equivalent cost of the same hours.",
        targets=targets(*specs, instant=True, fmt=g.TABLE_TARGET_FORMAT),
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "renameByName": {f"Value #{chr(ord('A') + i)}": name
                                 for i, (_, name) in enumerate(specs)}}},
        ])
    grid.add(table, w=24, h=10)

    variables = [
        datasource_variable(),
        query_variable("region", "Region", m.INSTANCE_INFO, "region"),
        custom_variable("nih", "Estimated NIH reduction %", list(range(0, 41)), 10),
    ]
    return dashboard(
        "nitrometer: Graviton savings", UID,
        "Potential savings from moving eligible x86 instances to Graviton, in normalized "
        "instance hours, live from the agents' cost counters.",
        ["ec2", "graviton", "finops"], grid, variables)
