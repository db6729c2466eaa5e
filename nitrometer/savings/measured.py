"""The measured NIH reduction: like for like, at equal load, with a confidence interval.

Hosts are compared only within a comparison group (hosts sharing the group labels, by default
the scrape `job`: the same service), Graviton (arm64) against x86. A side's rate is its work
per normalized instance hour; at equal load that is work per *busy* normalized hour, each
host's normalized hours weighted by its CPU busy share, i.e. the work it would do per
normalized hour at 100 % busy. Work scaling linearly with CPU, the CPU target then cancels:
the reduction is the same at any target utilisation.

group reduction = 1 - x86 rate / Graviton rate
fleet reduction = the groups' reductions weighted by their x86 normalized hours (the hours
the reduction is applied to).

The interval is a normal approximation from the spread of the per-host rates, the one the
recording rules compute in PromQL (nitrometer.dashboards.nih), so that the CLI and the
dashboard give the same figure and interval on the same data (docs/savings.md, "Measured NIH
reduction"): each side's relative standard error is (stddev / mean of its hosts' rates)^2 / n
(population stddev, as PromQL's stddev), the group's standard error is
100 x ratio x sqrt(x86's + Graviton's) in % points, the fleet's is
sqrt(sum((group stderr x weight)^2)) / sum(weights), and the interval is the figure +- z x
that, z the normal quantile of the confidence level.

A host whose CPU busy share is not in (0, 1] (counters reset or mislabelled) has no usable
CPU counters: it counts only in the raw figure, and a note names it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from nitrometer.errors import NitrometerError

EQUAL_LOAD = "equal_load"
RAW = "raw"
BASES = (EQUAL_LOAD, RAW)
SIDES = (("graviton", "arm64"), ("x86", "x86_64"))
DEFAULT_CONFIDENCE = 0.90
DEFAULT_MIN_HOURS = 1.0
DEFAULT_GROUP_BY = ("job",)


def z_score(confidence: float) -> float:
    """The two-sided normal quantile of a confidence level (0.90 -> 1.645)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass
class HostWork:
    """One host over the time range."""

    key: tuple[str, str]  # (job, instance)
    arch: str
    group: tuple[str, ...]  # values of the group labels
    hours: float = 0.0
    nih: float = 0.0
    work: float = 0.0
    cpu_busy_seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def usable(self) -> bool:
        return self.work > 0 and self.nih > 0

    @property
    def bad_cpu_share(self) -> bool:
        """CPU counters whose busy share is above 1, negative or not a number."""
        busy, total = self.cpu_busy_seconds, self.cpu_seconds
        if busy == 0 and total == 0:
            return False  # no counters
        return not (math.isfinite(busy) and math.isfinite(total) and total > 0
                    and 0 <= busy <= total)

    @property
    def has_cpu(self) -> bool:
        """CPU counters that give a busy share in (0, 1]."""
        busy, total = self.cpu_busy_seconds, self.cpu_seconds
        return math.isfinite(busy) and math.isfinite(total) and 0 < busy <= total

    @property
    def busy_share(self) -> float:
        return self.cpu_busy_seconds / self.cpu_seconds

    def denominator(self, basis: str) -> float:
        """Normalized hours, or at equal load busy normalized hours."""
        return self.nih * self.busy_share if basis == EQUAL_LOAD else self.nih


@dataclass
class Side:
    hosts: list[HostWork] = field(default_factory=list)

    def summary(self) -> dict:
        nih = sum(h.nih for h in self.hosts)
        work = sum(h.work for h in self.hosts)
        with_cpu = [h for h in self.hosts if h.has_cpu]
        busy_nih = sum(h.denominator(EQUAL_LOAD) for h in with_cpu)
        return {
            "hosts": len(self.hosts),
            "hosts_with_cpu": len(with_cpu),
            "instance_hours": sum(h.hours for h in self.hosts),
            "normalized_hours": nih,
            "work": work,
            "work_per_normalized_hour": work / nih if nih else 0.0,
            # the NIH-weighted busy share and the work per busy NIH, of hosts with CPU counters
            "cpu_busy_share": (busy_nih / sum(h.nih for h in with_cpu)) if with_cpu else None,
            "work_per_busy_normalized_hour":
                sum(h.work for h in with_cpu) / busy_nih if busy_nih else None,
        }


def _arrays(hosts: list[HostWork], basis: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([h.work for h in hosts]), np.array([h.denominator(basis) for h in hosts]),
            np.array([h.nih for h in hosts]))


def _short(side: str, hosts: list[HostWork], min_hosts: int, min_hours: float) -> str | None:
    hours = sum(h.hours for h in hosts)
    if not hosts:
        return f"no {side} hosts"
    if len(hosts) < min_hosts or hours < min_hours:
        return f"{side} has {len(hosts)} hosts and {hours:.1f} instance hours"
    return None


def _interval(point: float, stderr: float, z: float) -> list[float]:
    """In %: both are fractions."""
    return [100 * (point - z * stderr), 100 * (point + z * stderr)]


def _relative_variance(work: np.ndarray, denominator: np.ndarray) -> float:
    """(stddev / mean)^2 / n of the hosts' rates: the squared relative standard error."""
    rates = work / denominator
    return float((rates.std() / rates.mean()) ** 2 / len(rates))


class _Basis:
    """One basis (raw or equal load) over the groups: figures and standard errors."""

    def __init__(self, basis: str, groups: dict, min_hosts: int, min_hours: float):
        self.basis = basis
        self.reductions: dict[tuple, float] = {}
        self.stderrs: dict[tuple, float] = {}
        self.weights: dict[tuple, float] = {}
        self.reasons: dict[tuple, str] = {}
        for group, sides in groups.items():
            chosen = {name: [h for h in side.hosts if basis == RAW or h.has_cpu]
                      for name, side in sides.items()}
            short = [s for s in (_short(name, chosen[name], min_hosts, min_hours)
                                 for name, _ in SIDES) if s]
            if short:
                self.reasons[group] = "; ".join(short)
                continue
            rates, variance = {}, 0.0
            for name, _ in SIDES:
                work, den, nih = _arrays(chosen[name], basis)
                rates[name] = float(work.sum() / den.sum())
                variance += _relative_variance(work, den)
                if name == "x86":
                    self.weights[group] = float(nih.sum())
            ratio = rates["x86"] / rates["graviton"]
            self.reductions[group] = 1 - ratio
            self.stderrs[group] = ratio * math.sqrt(variance)

    @property
    def comparable(self) -> bool:
        return bool(self.reductions)

    def fleet(self) -> tuple[float, float]:
        """The x86-hours-weighted figure and its standard error."""
        groups = list(self.reductions)
        weights = np.array([self.weights[g] for g in groups])
        point = float(np.dot([self.reductions[g] for g in groups], weights) / weights.sum())
        stderr = float(np.sqrt(np.sum((np.array([self.stderrs[g] for g in groups])
                                       * weights) ** 2)) / weights.sum())
        return point, stderr


def estimate(hosts: list[HostWork], group_by: tuple[str, ...] = DEFAULT_GROUP_BY, *,
             min_hosts: int = 1, min_hours: float = DEFAULT_MIN_HOURS,
             confidence: float = DEFAULT_CONFIDENCE) -> dict:
    """The measured reduction per group and for the fleet, on both bases, with intervals.

    The figure used is the one at equal load when at least one group can be compared with
    CPU counters on both sides, else the raw one. Raises NitrometerError when no group can
    be compared at all."""
    groups: dict[tuple, dict[str, Side]] = {}
    for host in sorted(hosts, key=lambda h: (h.group, h.key)):
        if not host.usable:
            continue
        sides = groups.setdefault(host.group, {name: Side() for name, _ in SIDES})
        for name, arch in SIDES:
            if host.arch == arch:
                sides[name].hosts.append(host)
    z = z_score(confidence)
    bases = {b: _Basis(b, groups, min_hosts, min_hours) for b in BASES}
    if not bases[RAW].comparable:
        why = "; ".join(f"{_group_name(group_by, g)}: {r}"
                        for g, r in bases[RAW].reasons.items()) or "no host has work"
        raise NitrometerError(
            f"too little data to measure the NIH reduction: no comparison group has both "
            f"Graviton and x86 hosts with {min_hosts} hosts and {min_hours:g} hours with work "
            f"on each side ({why})")
    used = EQUAL_LOAD if bases[EQUAL_LOAD].comparable else RAW
    figures = {}
    for name, basis in bases.items():
        if basis.comparable:
            point, stderr = basis.fleet()
            figures[name] = {"nih_reduction_pct": 100 * point,
                             "interval_pct": _interval(point, stderr, z),
                             "groups": len(basis.reductions)}
        else:
            figures[name] = {"nih_reduction_pct": None, "interval_pct": None, "groups": 0}
    rows = []
    for group, sides in groups.items():
        row = {"labels": dict(zip(group_by, group)),
               "comparable": group in bases[used].reductions,
               "reason": bases[used].reasons.get(group),
               "weight_normalized_hours": bases[used].weights.get(group, 0.0)}
        for name, basis in bases.items():
            if group in basis.reductions:
                row[name] = {"nih_reduction_pct": 100 * basis.reductions[group],
                             "interval_pct": _interval(basis.reductions[group],
                                                       basis.stderrs[group], z)}
            else:
                row[name] = {"nih_reduction_pct": None, "interval_pct": None}
        row.update({name: side.summary() for name, side in sides.items()})
        rows.append(row)
    totals = {name: Side([h for g in groups if g in bases[used].reductions
                          for h in groups[g][name].hosts]).summary() for name, _ in SIDES}
    return {"nih_reduction_pct": figures[used]["nih_reduction_pct"],
            "interval_pct": figures[used]["interval_pct"], "basis": used,
            "confidence_pct": 100 * confidence, "interval_method": "normal",
            "min_hosts": min_hosts, "min_hours": min_hours, "group_by": list(group_by),
            "equal_load": figures[EQUAL_LOAD],
            "raw": figures[RAW], "groups": rows,
            "notes": _notes(groups, bases, used, group_by), "warnings": _cpu_warnings(hosts),
            **totals}


def _cpu_warnings(hosts: list[HostWork]) -> list[str]:
    warnings = []
    for h in hosts:
        if h.usable and h.bad_cpu_share:
            share = h.cpu_busy_seconds / h.cpu_seconds if h.cpu_seconds else float("nan")
            warnings.append(f"host {h.key[1]} (job {h.key[0]}): CPU busy share {share:.3g} is "
                            "not between 0 and 1: left out of the figure at equal load "
                            "(it counts in the raw one)")
    return warnings


def _group_name(group_by: tuple[str, ...], group: tuple) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in zip(group_by, group))


def _notes(groups: dict, bases: dict, used: str, group_by: tuple[str, ...]) -> list[str]:
    notes = []
    without_cpu = sum(1 for sides in groups.values() for side in sides.values()
                      for h in side.hosts if not h.has_cpu)
    if used == RAW:
        notes.append("no comparison group has CPU counters "
                     "(nitrometer_host_cpu_*_seconds_total) on both sides: the figure is the "
                     "raw work per normalized hour, which also measures any difference in load")
    elif without_cpu:
        notes.append(f"{without_cpu} hosts have no usable CPU counters and count only in "
                     "the raw figure")
    raw_only = [g for g in bases[RAW].reductions if g not in bases[used].reductions]
    if raw_only:
        notes.append("compared only raw, without CPU counters: "
                     + "; ".join(_group_name(group_by, g) for g in raw_only))
    single = [g for g in bases[used].reductions
              if any(len([h for h in groups[g][name].hosts if used == RAW or h.has_cpu]) < 2
                     for name, _ in SIDES)]
    if single:
        notes.append("one host on a side gives no spread to draw from, so the interval "
                     "understates the uncertainty of "
                     + "; ".join(_group_name(group_by, g) for g in single))
    return notes
