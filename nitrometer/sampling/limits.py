"""The limits a device works under, and how close an interval's rates ran to them.

Rates come from the interval record (interval.py); this only sets them against bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_COVERS = {"read": ("read",), "write": ("write",), "total": ("read", "write")}  # op -> ops


@dataclass(frozen=True)
class Limits:
    """The limits a device works under, where known: its EBS volume's provisioned IOPS and
    throughput (bytes/s), and the instance's published ones for the device's kind by op
    ("read", "write", "total") -> {"iops": .., "throughput": ..}."""

    volume_type: str = ""
    volume_iops: float | None = None
    volume_throughput: float | None = None
    instance: dict = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return bool(self.volume_iops or self.volume_throughput or self.instance)


@dataclass(frozen=True)
class Headroom:
    """How close a rate ran to one limit: `used` of `bound` (IOPS or bytes/s)."""

    scope: str  # volume | instance
    op: str  # read | write | total
    limit: str  # iops | throughput
    bound: float
    used: float

    @property
    def fraction(self) -> float:
        return self.used / self.bound

    @property
    def percent(self) -> float:
        return 100 * self.used / self.bound


def _op_rates(stats: dict, op: str) -> tuple[float, float]:
    ops = _COVERS[op]
    return (sum(stats[o].iops or 0.0 for o in ops),
            sum(stats[o].throughput or 0.0 for o in ops))


def headroom_of(stats: dict, limits: Limits | None) -> tuple[Headroom, ...]:
    """Each known limit against the rates of the ops it covers."""
    if limits is None or stats["read"].iops is None:
        return ()
    out = []
    iops, tp = _op_rates(stats, "total")
    for limit, bound, used in (("iops", limits.volume_iops, iops),
                               ("throughput", limits.volume_throughput, tp)):
        if bound:
            out.append(Headroom("volume", "total", limit, bound, used))
    for op in ("read", "write", "total"):
        bounds = limits.instance.get(op) or {}
        iops, tp = _op_rates(stats, op)
        for limit, used in (("iops", iops), ("throughput", tp)):
            if bounds.get(limit):
                out.append(Headroom("instance", op, limit, bounds[limit], used))
    return tuple(out)


def combined_headroom(intervals, op: str, bound: float, limit: str) -> Headroom:
    """Several devices of one kind together against the instance's limit for that kind."""
    which = 0 if limit == "iops" else 1
    used = sum(_op_rates(iv.ops, op)[which] for iv in intervals)
    return Headroom("instance", op, limit, bound, used)
