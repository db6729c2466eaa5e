"""The measured NIH reduction in PromQL, for the savings dashboard and the recording rules.

The one definition `nitrometer savings --measured` also computes (nitrometer.savings.measured;
docs/savings.md, "Measured NIH reduction"): per comparison group (the scrape `job`, the CLI's
default --group-by), Graviton against x86 hosts with at least min_hosts hosts and min_hours
instance hours a side (1 and 1), each side's work per normalized hour, at equal load per
*busy* normalized hour (normalized hours x the host's CPU busy share, hosts whose share is in
(0, 1]); the fleet figure is the groups' reductions weighted by their x86 normalized hours,
at equal load when any group can be compared with CPU counters, else raw.

The interval is a normal approximation from the spread of the per-host rates (standard error
of each side's mean, combined for the ratio, then for the weighted groups), so it is only as
good as a normal approximation from a few hosts is.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

from nitrometer import metrics as m

TARGET = "instance, job"
GROUP = "job"
GRAVITON, X86 = "arm64", "x86_64"
EQUAL_LOAD, RAW = "equal_load", "raw"
MIN_HOSTS, MIN_HOURS = 1, 1


def z_score(level_pct: float) -> float:
    """The two-sided normal quantile of a confidence level in % (90 -> 1.645), as the CLI's."""
    return NormalDist().inv_cdf(0.5 + level_pct / 200)


@dataclass(frozen=True)
class Query:
    """window: a PromQL range ("[$__range]", "[1h]"); info_selector narrows the hosts
    (e.g. region); min_hosts and min_hours may be numbers or dashboard variables."""

    window: str
    info_selector: str = ""
    min_hosts: str = str(MIN_HOSTS)
    min_hours: str = str(MIN_HOURS)

    def per_host(self, metric: str) -> str:
        return f"sum by ({TARGET}) (increase({metric}{self.window}))"

    @property
    def work(self) -> str:
        return f"({self.per_host(m.READ_OPS)} + {self.per_host(m.WRITE_OPS)})"

    def hours(self, seconds_metric: str) -> str:
        return f"({self.per_host(seconds_metric)} / {m.SECONDS_PER_HOUR})"

    @property
    def nih(self) -> str:
        return self.hours(m.NORMALIZED_SECONDS)

    def hosts(self, arch: str, basis: str) -> str:
        """One series per host of that architecture the basis can use (value: its work)."""
        sel = f'arch="{arch}"' + (f", {self.info_selector}" if self.info_selector else "")
        info = f"max by ({TARGET}) (last_over_time({m.INSTANCE_INFO}{{{sel}}}{self.window}))"
        expr = f"({self.work} > 0) and on ({TARGET}) ({self.nih} > 0) and on ({TARGET}) {info}"
        if basis == EQUAL_LOAD:
            busy, total = (self.per_host(m.HOST_CPU_BUSY_SECONDS),
                           self.per_host(m.HOST_CPU_SECONDS))
            # a busy share outside (0, 1] is a broken counter: the host counts only raw
            expr += (f" and on ({TARGET}) ({busy} > 0) and on ({TARGET}) ({total} > 0)"
                     f" and on ({TARGET}) ({busy} / {total} <= 1)")
        return f"({expr})"

    def denominator(self, basis: str) -> str:
        if basis == RAW:
            return self.nih
        return (f"({self.nih} * {self.per_host(m.HOST_CPU_BUSY_SECONDS)} / "
                f"{self.per_host(m.HOST_CPU_SECONDS)})")

    def _sum(self, expr: str, hosts: str) -> str:
        return f"sum by ({GROUP}) (({expr}) and on ({TARGET}) {hosts})"

    def side_rate(self, arch: str, basis: str) -> str:
        hosts = self.hosts(arch, basis)
        return f"({self._sum(self.work, hosts)} / {self._sum(self.denominator(basis), hosts)})"

    def side_enough(self, arch: str, basis: str) -> str:
        hosts = self.hosts(arch, basis)
        return (f"(count by ({GROUP}) ({hosts}) >= {self.min_hosts}) and on ({GROUP}) "
                f"({self._sum(self.hours(m.INSTANCE_SECONDS), hosts)} >= {self.min_hours})")

    def _comparable(self, expr: str, basis: str) -> str:
        return (f"({expr} and on ({GROUP}) {self.side_enough(X86, basis)} "
                f"and on ({GROUP}) {self.side_enough(GRAVITON, basis)})")

    def group_reduction(self, basis: str) -> str:
        """Per group, in %: 1 - x86 rate / Graviton rate."""
        ratio = f"{self.side_rate(X86, basis)} / {self.side_rate(GRAVITON, basis)}"
        return self._comparable(f"(1 - {ratio}) * 100", basis)

    def group_weight(self, basis: str) -> str:
        return self._sum(self.nih, self.hosts(X86, basis))

    def _fleet_average(self, per_group: str, basis: str) -> str:
        weight = self.group_weight(basis)
        return (f"(sum({per_group} * on ({GROUP}) {weight}) / "
                f"sum({weight} and on ({GROUP}) {per_group}))")

    def fleet_reduction(self, basis: str) -> str:
        return self._fleet_average(self.group_reduction(basis), basis)

    def measured(self) -> str:
        """The figure the model uses: at equal load if any group compares so, else raw."""
        return f"({self.fleet_reduction(EQUAL_LOAD)} or on () {self.fleet_reduction(RAW)})"

    # -- the interval from per-host spread ------------------------------------------------

    def _relative_variance(self, arch: str, basis: str) -> str:
        """(standard error / mean)^2 of a side's per-host rates."""
        hosts = self.hosts(arch, basis)
        rate = f"(({self.work} and on ({TARGET}) {hosts}) / {self.denominator(basis)})"
        return (f"((stddev by ({GROUP}) ({rate}) / avg by ({GROUP}) ({rate})) ^ 2 / "
                f"count by ({GROUP}) ({rate}))")

    def group_stderr(self, basis: str) -> str:
        """Standard error of the group's reduction, in % points (delta method)."""
        ratio = f"{self.side_rate(X86, basis)} / {self.side_rate(GRAVITON, basis)}"
        spread = (f"sqrt({self._relative_variance(X86, basis)} + "
                  f"{self._relative_variance(GRAVITON, basis)})")
        return self._comparable(f"100 * {ratio} * {spread}", basis)

    def fleet_stderr(self, basis: str) -> str:
        weight = self.group_weight(basis)
        stderr = self.group_stderr(basis)
        return (f"(sqrt(sum(({stderr} * on ({GROUP}) {weight}) ^ 2)) / "
                f"sum({weight} and on ({GROUP}) {stderr}))")

    def bound(self, sign: int, level: int = 90, basis: str | None = None) -> str:
        """Lower (sign -1) or upper (+1) end of the interval of the used figure (or of one
        basis)."""
        def one(b: str) -> str:
            op = "+" if sign > 0 else "-"
            return f"({self.fleet_reduction(b)} {op} {z_score(level)!r} * {self.fleet_stderr(b)})"
        if basis:
            return one(basis)
        return f"({one(EQUAL_LOAD)} or on () {one(RAW)})"

    def group_bound(self, sign: int, basis: str, level: int = 90) -> str:
        op = "+" if sign > 0 else "-"
        return (f"({self.group_reduction(basis)} {op} {z_score(level)!r} * "
                f"{self.group_stderr(basis)})")
