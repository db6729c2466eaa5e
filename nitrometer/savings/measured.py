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

The interval is a percentile bootstrap over hosts: hosts are drawn with replacement within
each group and side (seeded), and every statistic is computed again from each draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nitrometer.errors import NitrometerError

EQUAL_LOAD = "equal_load"
RAW = "raw"
BASES = (EQUAL_LOAD, RAW)
SIDES = (("graviton", "arm64"), ("x86", "x86_64"))
DEFAULT_CONFIDENCE = 0.90
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0


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
    def has_cpu(self) -> bool:
        return self.cpu_busy_seconds > 0 and self.cpu_seconds > 0

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


def _interval(draws: np.ndarray, confidence: float) -> list[float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return [100 * float(low), 100 * float(high)]


class _Basis:
    """One basis (raw or equal load) over the groups: point figures and bootstrap draws."""

    def __init__(self, basis: str, groups: dict, min_hosts: int, min_hours: float,
                 rng: np.random.Generator, resamples: int):
        self.basis = basis
        self.reductions: dict[tuple, float] = {}
        self.draws: dict[tuple, np.ndarray] = {}
        self.weights: dict[tuple, float] = {}
        self.weight_draws: dict[tuple, np.ndarray] = {}
        self.reasons: dict[tuple, str] = {}
        for group, sides in groups.items():
            chosen = {name: [h for h in side.hosts if basis == RAW or h.has_cpu]
                      for name, side in sides.items()}
            short = [s for s in (_short(name, chosen[name], min_hosts, min_hours)
                                 for name, _ in SIDES) if s]
            if short:
                self.reasons[group] = "; ".join(short)
                continue
            rates, rate_draws = {}, {}
            for name, _ in SIDES:
                work, den, nih = _arrays(chosen[name], basis)
                rates[name] = float(work.sum() / den.sum())
                picks = rng.integers(0, len(work), size=(resamples, len(work)))
                rate_draws[name] = work[picks].sum(axis=1) / den[picks].sum(axis=1)
                if name == "x86":
                    self.weights[group] = float(nih.sum())
                    self.weight_draws[group] = nih[picks].sum(axis=1)
            self.reductions[group] = 1 - rates["x86"] / rates["graviton"]
            self.draws[group] = 1 - rate_draws["x86"] / rate_draws["graviton"]

    @property
    def comparable(self) -> bool:
        return bool(self.reductions)

    def fleet(self) -> tuple[float, np.ndarray]:
        groups = list(self.reductions)
        weights = np.array([self.weights[g] for g in groups])
        point = float(np.dot([self.reductions[g] for g in groups], weights) / weights.sum())
        weight_draws = np.stack([self.weight_draws[g] for g in groups])
        draws = (np.stack([self.draws[g] for g in groups]) * weight_draws).sum(axis=0) \
            / weight_draws.sum(axis=0)
        return point, draws


def estimate(hosts: list[HostWork], group_by: tuple[str, ...] = ("job",), *,
             min_hosts: int = 1, min_hours: float = 1.0,
             confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED) -> dict:
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
    rng = np.random.default_rng(seed)
    bases = {b: _Basis(b, groups, min_hosts, min_hours, rng, resamples) for b in BASES}
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
            point, draws = basis.fleet()
            figures[name] = {"nih_reduction_pct": 100 * point,
                             "interval_pct": _interval(draws, confidence),
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
                             "interval_pct": _interval(basis.draws[group], confidence)}
            else:
                row[name] = {"nih_reduction_pct": None, "interval_pct": None}
        row.update({name: side.summary() for name, side in sides.items()})
        rows.append(row)
    totals = {name: Side([h for g in groups if g in bases[used].reductions
                          for h in groups[g][name].hosts]).summary() for name, _ in SIDES}
    return {"nih_reduction_pct": figures[used]["nih_reduction_pct"],
            "interval_pct": figures[used]["interval_pct"], "basis": used,
            "confidence_pct": 100 * confidence, "resamples": resamples, "seed": seed,
            "group_by": list(group_by), "equal_load": figures[EQUAL_LOAD],
            "raw": figures[RAW], "groups": rows, "notes": _notes(groups, bases, used, group_by),
            **totals}


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
        notes.append(f"{without_cpu} hosts have no CPU counters and count only in the raw "
                     "figure")
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
