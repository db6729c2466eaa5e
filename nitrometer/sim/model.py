"""The workload model behind the simulator: limits, queueing and latency, one second at a time.

Each second a device gets a demand (IOPS per op and IO-size band). Limits (IOPS per op, a
throughput limit, instance-wide limits shared by every device of a kind) cap what completes.
The application keeps a bounded number of IOs outstanding (closed loop), so demand above a
limit turns into queueing: by Little's law the wait is outstanding work / capacity. Latency
per op and band is lognormal around base + wait; bin counts are drawn with a multinomial
over the page's power-of-two bins, so no per-IO work is done.

Plain Python (random, math): the agent's simulated devices need no numpy. Vectors are lists
over the five IO-size bands.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from nitrometer import ec2
from nitrometer.ec2 import Limits
from nitrometer.errors import ConfigError
from nitrometer.logpage import power_of_two_bounds

NUM_BINS = 28  # [0,1] .. [2^25, 2^26], then open ended: within the 32 detail bins
BOUNDS = power_of_two_bounds(NUM_BINS)
_LOG_UPPER_EDGES = [math.log(float(u)) for _, u in BOUNDS[:-1]]  # last bin takes the rest
OPS = ("read", "write")
# Representative IO size (bytes) of each EC2-guide band: (0,512] (512,4K] (4K,8K] (8K,32K] (32K,max]
BAND_BYTES = (512.0, 4096.0, 8192.0, 16384.0, 131072.0)
BURST_SIGMA = 0.25  # spread of the instantaneous demand inside a second (lognormal)


def supported_instance_types() -> list[str]:
    return ec2.instance_store_types()


def instance_store_limits(instance_type: str) -> tuple[int, Limits]:
    """(number of instance-store volumes, the instance's aggregate limits)."""
    found = ec2.instance_store_limits(instance_type)
    if found is None:
        import difflib

        known = supported_instance_types()
        closest = difflib.get_close_matches(instance_type.lower(), known, n=3, cutoff=0.6)
        hint = f"closest: {', '.join(closest)}" if closest else \
            f"families with instance storage: {', '.join(sorted({t.split('.')[0] for t in known}))}"
        raise ConfigError(f"simulate: {instance_type!r} is no instance type with instance "
                          f"storage that nitrometer knows ({hint})")
    return found


def ebs_volume_limits(volume_type: str) -> Limits:
    found = ec2.ebs_volume_limits(volume_type)
    if found is None:
        known = ", ".join(n for s, n in ec2.limits_table() if s == "ebs_volume")
        raise ConfigError(f"simulate: unknown EBS volume type {volume_type!r} (known: {known})")
    return found


def ebs_instance_limits(instance_type: str) -> Limits | None:
    return ec2.ebs_instance_limits(instance_type)


def dot(a, b) -> float:
    return float(sum(x * y for x, y in zip(a, b)))


def scaled(vector, factor: float) -> list[float]:
    return [factor * x for x in vector]


@dataclass
class Demand:
    """What the application asks of one device this second."""

    read_iops: list  # per band
    write_iops: list
    read_depth: float = 32.0  # IOs the application keeps outstanding when saturated
    write_depth: float = 32.0


@dataclass
class LimitState:
    """One limit over one or more devices: its utilization this second."""

    counter: str  # the page counter advanced while it is exceeded
    ops: tuple[str, ...]  # which ops count against it
    unit: str  # "ops" or "bytes"
    capacity: float  # per second, over all devices sharing it
    devices: list = field(default_factory=list)
    utilization: float = 0.0
    wait: float = 0.0  # seconds of queueing it adds to its ops

    def measure(self, demand: Demand) -> float:
        total = 0.0
        for op in self.ops:
            iops = demand.read_iops if op == "read" else demand.write_iops
            total += dot(iops, BAND_BYTES) if self.unit == "bytes" else float(sum(iops))
        return total

    def outstanding(self, demand: Demand) -> float:
        total = 0.0
        for op in self.ops:
            iops = demand.read_iops if op == "read" else demand.write_iops
            depth = demand.read_depth if op == "read" else demand.write_depth
            if self.unit == "bytes":
                n = sum(iops)
                total += depth * (dot(iops, BAND_BYTES) / n if n else 0.0)
            else:
                total += depth
        return total

    def update(self, demands: dict) -> None:
        load = sum(self.measure(demands[d]) for d in self.devices)
        self.utilization = load / self.capacity
        # A single server's wait below saturation (M/M/1), capped by what the application
        # can have outstanding; at or above the limit the cap is the wait (Little's law).
        outstanding = sum(self.outstanding(demands[d]) for d in self.devices)
        per_unit = (load / max(sum(self.measure_count(demands[d]) for d in self.devices), 1.0)
                    if self.unit == "bytes" else 1.0)
        cap = outstanding / self.capacity
        u = self.utilization
        below = per_unit / self.capacity * u / (1.0 - u) if u < 1.0 else math.inf
        self.wait = min(below, cap)

    def measure_count(self, demand: Demand) -> float:
        return sum(float(sum(demand.read_iops if op == "read" else demand.write_iops))
                   for op in self.ops)

    def exceeded_fraction(self) -> float:
        """Share of the second the instantaneous demand was above the limit."""
        u = self.utilization
        if u <= 0.0:
            return 0.0
        z = (-math.log(u) + BURST_SIGMA ** 2 / 2) / BURST_SIGMA
        return 0.5 * math.erfc(z / math.sqrt(2.0))


def bin_probabilities(median_us: float, sigma: float) -> list[float]:
    """P(latency in each page bin) for a lognormal latency."""
    centre, scale = math.log(max(median_us, 1e-3)), sigma * math.sqrt(2.0)
    cdf = [0.0] + [0.5 * math.erfc(-(edge - centre) / scale) for edge in _LOG_UPPER_EDGES]
    cdf.append(1.0)
    probs = [max(hi - lo, 0.0) for lo, hi in zip(cdf, cdf[1:])]
    total = sum(probs)
    return [p / total for p in probs]


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw: exact for small means, the normal approximation above (a simulator
    needs the spread, not the tail)."""
    if lam <= 0.0:
        return 0
    if lam < 30.0:
        limit, k, product = math.exp(-lam), 0, rng.random()
        while product > limit:
            k += 1
            product *= rng.random()
        return k
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if n <= 32:
        return sum(rng.random() < p for _ in range(n))
    mean, var = n * p, n * p * (1.0 - p)
    if var < 9.0:  # a rare outcome (or a near-certain one): Poisson on the rare side
        return min(n, poisson(rng, mean)) if p <= 0.5 else n - min(n, poisson(rng, n - mean))
    return min(n, max(0, round(rng.gauss(mean, math.sqrt(var)))))


def multinomial(rng: random.Random, n: int, probs: list[float]) -> list[int]:
    """n draws over the bins, as one binomial per bin given those before it: the counts
    always add up to n."""
    counts, left, rest = [0] * len(probs), n, 1.0
    for i, p in enumerate(probs[:-1]):
        if left <= 0:
            break
        counts[i] = binomial(rng, left, p / rest if rest > 0.0 else 1.0)
        left -= counts[i]
        rest -= p
    counts[-1] += left
    return counts


@dataclass
class DeviceCounters:
    """Everything cumulative on one device's page."""

    counters: dict = field(default_factory=dict)
    read_bins: list = field(default_factory=lambda: [0] * NUM_BINS)
    write_bins: list = field(default_factory=lambda: [0] * NUM_BINS)
    band_read: list = field(
        default_factory=lambda: [[0] * NUM_BINS for _ in BAND_BYTES])
    band_write: list = field(
        default_factory=lambda: [[0] * NUM_BINS for _ in BAND_BYTES])

    def add(self, name: str, value: float) -> None:
        self.counters[name] = self.counters.get(name, 0) + int(round(value))

    def bins(self, op: str) -> list[tuple[int, int, int]]:
        counts = self.read_bins if op == "read" else self.write_bins
        return [(lo, up, int(c)) for (lo, up), c in zip(BOUNDS, counts)]


@dataclass(frozen=True)
class LatencyProfile:
    """Unloaded service time per band (median us) and its spread."""

    read_us: tuple[float, ...]
    write_us: tuple[float, ...]
    sigma: float = 0.3


INSTANCE_STORE_LATENCY = LatencyProfile((10, 13, 18, 34, 90), (10, 14, 20, 36, 95), 0.25)
EBS_LATENCY = LatencyProfile((250, 300, 330, 420, 900), (380, 450, 500, 600, 1300))
QUEUED_SIGMA = 0.15  # waiting in a full queue is steadier than service itself


def _add_into(total: list, counts: list) -> None:
    for i, c in enumerate(counts):
        total[i] += c


def step_device(rng: random.Random, state: DeviceCounters, demand: Demand,
                limits: list[LimitState], profile: LatencyProfile, seconds: float = 1.0,
                detail: bool = True) -> None:
    """Advance one device by `seconds` under this demand and these (updated) limits."""
    queue = 0.0
    for op in OPS:
        mine = [lim for lim in limits if op in lim.ops]
        u = max((lim.utilization for lim in mine), default=0.0)
        wait_us = max((lim.wait for lim in mine), default=0.0) * 1e6
        iops = demand.read_iops if op == "read" else demand.write_iops
        served = scaled(iops, seconds / max(u, 1.0))
        counts = ([poisson(rng, s) for s in served] if seconds <= 1.0
                  else [round(s) for s in served])
        base = profile.read_us if op == "read" else profile.write_us
        op_bins = state.read_bins if op == "read" else state.write_bins
        total_time = 0.0
        for band, n in enumerate(counts):
            if n <= 0:
                continue
            median = base[band] + wait_us
            sigma = (profile.sigma * base[band] + QUEUED_SIGMA * wait_us) / median
            hist = multinomial(rng, n, bin_probabilities(median, sigma))
            _add_into(op_bins, hist)
            if detail:
                target = state.band_read if op == "read" else state.band_write
                _add_into(target[band], hist)
            total_time += n * median * math.exp(sigma ** 2 / 2)
        n_ops = float(sum(counts))
        state.add(f"total_{op}_ops", n_ops)
        state.add(f"total_{op}_bytes", dot(counts, BAND_BYTES))
        state.add(f"total_{op}_time", total_time)
        if n_ops:
            queue += n_ops / seconds * (total_time / n_ops) / 1e6  # Little: rate x latency
    by_counter: dict[str, float] = {}
    for lim in limits:
        by_counter[lim.counter] = max(by_counter.get(lim.counter, 0.0), lim.exceeded_fraction())
    for counter, fraction in by_counter.items():
        state.add(counter, fraction * seconds * 1e6)
    state.counters["volume_queue_length"] = int(round(queue))

