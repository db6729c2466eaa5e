"""Simulated devices: real binary pages from the workload model, on the caller's clock.

`simulated_sources(SourceSpec("simulate", "i3en.xlarge", "over-limit", ("gp3",)), clock)`
gives one source per instance-store volume of that type (nvme1n1..) and one per EBS volume
listed (after them). All devices of a host advance together in whole seconds from the last
read to the clock's now, so a FastClock(speed=0) runs a 40 s scenario instantly, and the
same seed gives the same pages whatever the read cadence.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable

from nitrometer.collectors.base import (
    KIND_EBS,
    KIND_INSTANCE_STORE,
    Clock,
    Device,
    PageSource,
    SourceSpec,
)
from nitrometer.ec2 import VolumeLimits
from nitrometer.errors import ConfigError
from nitrometer.logpage import DEFAULT_BAND_SIZES, encode_page
from nitrometer.sim import model as wl

MODEL_INSTANCE_STORE = "Amazon EC2 NVMe Instance Storage"
MODEL_EBS = "Amazon Elastic Block Store"
HISTORY_SECONDS = 3 * 86400  # counters start as if the host had been up for three days

# IO-size mixes over the five bands: (0,512] (512,4K] (4K,8K] (8K,32K] (32K,max]
OLTP_READS = (0.05, 0.70, 0.15, 0.08, 0.02)
OLTP_WRITES = (0.10, 0.60, 0.15, 0.10, 0.05)
SMALL_READS = (0.30, 0.70, 0.0, 0.0, 0.0)
LARGE_WRITES = (0.0, 0.0, 0.0, 0.0, 1.0)


def _rng(*parts) -> random.Random:
    """A generator seeded by its parts (a str seed is hashed the same in every process)."""
    return random.Random(":".join(map(str, parts)))


class DeviceModel:
    """One simulated device: identity, its share of the limits, and its counters."""

    def __init__(self, device: Device, index: int, seed: int, profile: wl.LatencyProfile):
        self.device = device
        self.index = index
        self.rng = _rng(seed, index)
        self.profile = profile
        self.state = wl.DeviceCounters()
        self.limits: list[wl.LimitState] = []
        self.reference = wl.Limits(0, 0, 0)  # the tightest limits its demand is scaled to

    @property
    def detail(self) -> bool:
        return self.device.kind == KIND_INSTANCE_STORE

    def page(self) -> bytes:
        s = self.state
        if not self.detail:
            return encode_page("ebs", s.counters, s.bins("read"), s.bins("write"))
        return encode_page(
            "instance_store", s.counters, s.bins("read"), s.bins("write"), version=1,
            band_sizes=DEFAULT_BAND_SIZES,
            band_read=[list(row) for row in s.band_read],
            band_write=[list(row) for row in s.band_write],
        )


def _demand(model: DeviceModel, read_u: float, write_u: float, read_mix=OLTP_READS,
            write_mix=OLTP_WRITES, write_tp_u: float | None = None,
            read_depth: float = 32, write_depth: float = 32) -> wl.Demand:
    """Demand as fractions of the device's reference limits (write_tp_u: of its throughput)."""
    ref = model.reference
    reads = wl.scaled(read_mix, read_u * ref.read_iops)
    if write_tp_u is not None:
        writes = wl.scaled(write_mix,
                           write_tp_u * ref.throughput / wl.dot(write_mix, wl.BAND_BYTES))
    else:
        writes = wl.scaled(write_mix, write_u * ref.write_iops)
    return wl.Demand(reads, writes, read_depth, write_depth)


def _noisy(rng: random.Random, value: float, spread: float = 0.03) -> float:
    return max(value * (1.0 + spread * rng.gauss(0.0, 1.0)), 0.0)


def steady(model: DeviceModel, t: int, rng) -> wl.Demand:
    return _demand(model, _noisy(rng, 0.3), _noisy(rng, 0.2))


def over_limit(model: DeviceModel, t: int, rng) -> wl.Demand:
    # The EC2 guide's first example: writes above the instance's write IOPS limit (about
    # 1.34x keeps the limit exceeded ~85 % of each second), reads well below theirs.
    return _demand(model, _noisy(rng, 0.3), _noisy(rng, 1.34), read_mix=SMALL_READS,
                   write_mix=SMALL_READS, write_depth=96)


def large_write_interference(model: DeviceModel, t: int, rng) -> wl.Demand:
    # The guide's second example: 128 KiB writes push past the throughput limit and the
    # small reads queue behind them (~11 ms of bytes ahead of them).
    return _demand(model, _noisy(rng, 0.25), 0.0, read_mix=SMALL_READS,
                   write_mix=LARGE_WRITES, write_tp_u=_noisy(rng, 1.25), write_depth=88)


class Mixed:
    """A fleet-like day: load drifts, and now and then an episode touches a limit."""

    PERIOD = 600

    def __init__(self, seed: int):
        self.rng = _rng(seed, 9999)
        self.episodes: list[tuple[int, int, str]] = []
        self.planned_until = 0

    def _plan(self, t: int) -> None:
        while self.planned_until <= t:
            start = self.planned_until + self.rng.randrange(40, 120)
            length = self.rng.randrange(8, 30)
            kind = ("writes", "bytes", "reads")[self.rng.randrange(0, 3)]
            self.episodes.append((start, start + length, kind))
            self.planned_until = start + length

    def __call__(self, model: DeviceModel, t: int, rng) -> wl.Demand:
        self._plan(t)
        level = 0.45 + 0.25 * math.sin(2 * math.pi * t / self.PERIOD + model.index)
        read_u, write_u = _noisy(rng, level, 0.08), _noisy(rng, level * 0.7, 0.08)
        for start, end, kind in self.episodes:
            if start <= t < end:
                if kind == "writes":
                    return _demand(model, read_u, _noisy(rng, 1.15), write_depth=64)
                if kind == "bytes":
                    return _demand(model, read_u, 0.0, write_mix=LARGE_WRITES,
                                   write_tp_u=_noisy(rng, 1.1), write_depth=48)
                return _demand(model, _noisy(rng, 1.1), write_u, read_depth=64)
        return _demand(model, read_u, write_u)


SCENARIOS: dict[str, Callable[[int], Callable]] = {
    "steady": lambda seed: steady,
    "over-limit": lambda seed: over_limit,
    "large-write-interference": lambda seed: large_write_interference,
    "mixed": Mixed,
}


try:  # the interpreter's own SHA-256, as random.py takes its SHA-512: hashlib loads OpenSSL
    from _sha2 import sha256 as _sha256  # Python 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as _sha256
    except ImportError:
        from hashlib import sha256 as _sha256


def _serial(prefix: str, *parts) -> str:
    digest = _sha256(":".join(map(str, parts)).encode()).hexdigest()
    return prefix + digest[:17]


class SimulatedHost:
    """All devices of one simulated instance; they step together because instance limits
    are shared between them."""

    def __init__(self, spec: SourceSpec, clock: Clock, seed: int = 0):
        scenario = spec.scenario or "steady"
        if scenario not in SCENARIOS:
            raise ConfigError(f"simulate: unknown scenario {scenario!r} "
                              f"(known: {', '.join(SCENARIOS)})")
        self.instance_type = spec.target
        self.scenario = SCENARIOS[scenario](seed)
        self.clock = clock
        self.lock = threading.Lock()
        self.rng = _rng(seed, 7777)
        count, store_limits = wl.instance_store_limits(spec.target)
        self.models: list[DeviceModel] = []
        for i in range(count):
            serial = _serial("AWS", spec.target, i, seed).upper()
            dev = Device(f"nvme{i + 1}n1", f"simulated:nvme{i + 1}n1", KIND_INSTANCE_STORE,
                         serial, MODEL_INSTANCE_STORE, controller=f"nvme{i + 1}",
                         firmware="0")
            self.models.append(DeviceModel(dev, i, seed, wl.INSTANCE_STORE_LATENCY))
        ebs_models = []
        for j, volume_type in enumerate(spec.ebs_volumes):
            vol_limits = wl.ebs_volume_limits(volume_type)
            n = count + j + 1
            dev = Device(f"nvme{n}n1", f"simulated:nvme{n}n1", KIND_EBS,
                         "vol-0" + _serial("", spec.target, volume_type, j, seed)[:16],
                         MODEL_EBS, controller=f"nvme{n}", bdev=f"sd{chr(ord('f') + j)}",
                         firmware="2.0")
            model = DeviceModel(dev, count + j, seed, wl.EBS_LATENCY)
            model.volume_limits = VolumeLimits(volume_type, vol_limits.read_iops,
                                               vol_limits.throughput, "simulated")
            model.limits = [
                wl.LimitState("ebs_volume_performance_exceeded_iops", wl.OPS, "ops",
                              vol_limits.read_iops, [model]),
                wl.LimitState("ebs_volume_performance_exceeded_tp", wl.OPS, "bytes",
                              vol_limits.throughput, [model]),
            ]
            # Reads and writes share one IOPS limit: each op's demand is scaled to half.
            model.reference = wl.Limits(vol_limits.read_iops / 2, vol_limits.write_iops / 2,
                                        vol_limits.throughput)
            ebs_models.append(model)
        self._share_instance_limits(self.models, store_limits)
        instance_ebs = wl.ebs_instance_limits(spec.target)
        if ebs_models and instance_ebs is not None:
            self._share_instance_limits(ebs_models, instance_ebs, ebs=True)
        self.models += ebs_models
        self.start = clock.monotonic()
        self.seconds_done = 0
        self._history()

    @staticmethod
    def _share_instance_limits(models: list[DeviceModel], lim: wl.Limits,
                               ebs: bool = False) -> None:
        if not models:
            return
        models = list(models)  # the limit keeps its own list of the devices it spans
        n = len(models)
        prefix = "ec2_instance_performance_exceeded"
        if ebs:  # EBS IOPS count reads and writes together
            shared = [wl.LimitState(f"{prefix}_iops", wl.OPS, "ops", lim.read_iops, models)]
        else:
            shared = [wl.LimitState(f"{prefix}_iops", ("read",), "ops", lim.read_iops, models),
                      wl.LimitState(f"{prefix}_iops", ("write",), "ops", lim.write_iops, models)]
        shared.append(wl.LimitState(f"{prefix}_tp", wl.OPS, "bytes", lim.throughput, models))
        for model in models:
            model.limits += shared
            ref = model.reference
            share = wl.Limits(lim.read_iops / n, lim.write_iops / n, lim.throughput / n)
            if ebs:  # the tighter of the volume's own limit and its share of the instance's
                share = wl.Limits(min(ref.read_iops, share.read_iops),
                                  min(ref.write_iops, share.write_iops),
                                  min(ref.throughput, share.throughput))
            model.reference = share

    def _all_limits(self) -> list[wl.LimitState]:
        seen: dict[int, wl.LimitState] = {}
        for model in self.models:
            for lim in model.limits:
                seen.setdefault(id(lim), lim)
        return list(seen.values())

    def _history(self) -> None:
        """Counters as of boot + HISTORY_SECONDS at a steady load (u32 bins have wrapped)."""
        demands = {m: steady(m, 0, self.rng) for m in self.models}
        for lim in self._all_limits():
            lim.update(demands)
        for m in self.models:
            wl.step_device(m.rng, m.state, demands[m], m.limits, m.profile,
                           seconds=HISTORY_SECONDS, detail=m.detail)

    def step(self) -> None:
        t = self.seconds_done
        demands = {m: self.scenario(m, t, self.rng) for m in self.models}
        for lim in self._all_limits():
            lim.update(demands)
        for m in self.models:
            wl.step_device(m.rng, m.state, demands[m], m.limits, m.profile, detail=m.detail)
        self.seconds_done += 1

    def advance(self) -> float:
        """Integrate whole seconds up to the clock's now; returns now."""
        with self.lock:
            now = self.clock.monotonic()
            target = int(math.floor(now - self.start + 1e-9))
            while self.seconds_done < target:
                self.step()
            return now


class SimulatedSource:
    def __init__(self, host: SimulatedHost, model: DeviceModel):
        self.host = host
        self.model = model
        self.device = model.device
        # An EBS volume's provisioned IOPS and throughput, for the agent's headroom gauges.
        self.volume_limits = getattr(model, "volume_limits", None)

    def read(self) -> tuple[bytes, float]:
        now = self.host.advance()
        with self.host.lock:
            return self.model.page(), now

    def close(self) -> None:
        pass


def simulated_sources(spec: SourceSpec, clock: Clock, seed: int = 0) -> list[PageSource]:
    host = SimulatedHost(spec, clock, seed)
    return [SimulatedSource(host, m) for m in host.models]
