"""Simulated fleets with a known Graviton gain, from the simulated host CPU model.

A host's CPU does its work at simhost's cost per IO (a third less on Graviton), times a
host's own efficiency factor (hosts differ); its load is the busy share it ran at. So at
equal load a Graviton host does 1 / (1 - saving) times the work per normalized hour, and the
true NIH reduction is the saving.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nitrometer.savings.measured import HostWork
from nitrometer.sim.host import GRAVITON_CPU_SAVING, cpu_seconds_per_io, vcpus

TRUE_REDUCTION_PCT = 100 * GRAVITON_CPU_SAVING
TYPES = {"x86_64": ("m5.xlarge", 8.0, 0.192), "arm64": ("m6g.xlarge", 8.0, 0.154)}


@dataclass
class SimHost:
    job: str
    instance: str
    arch: str
    load: float  # CPU busy share
    efficiency: float  # the host's CPU cost per IO relative to its architecture's
    hours: float

    @property
    def instance_type(self) -> str:
        return TYPES[self.arch][0]

    @property
    def nf(self) -> float:
        return TYPES[self.arch][1]

    @property
    def price(self) -> float:
        return TYPES[self.arch][2]

    @property
    def cpu_seconds(self) -> float:
        return vcpus(self.nf) * self.hours * 3600

    @property
    def busy_seconds(self) -> float:
        return self.load * self.cpu_seconds

    @property
    def work(self) -> float:
        return self.busy_seconds / (cpu_seconds_per_io(self.arch) * self.efficiency)

    def host_work(self, group_by: str = "job") -> HostWork:
        group = (self.job,) if group_by == "job" else ("",)
        return HostWork((self.job, self.instance), self.arch, group, hours=self.hours,
                        nih=self.nf * self.hours, work=self.work,
                        cpu_busy_seconds=self.busy_seconds, cpu_seconds=self.cpu_seconds)


def fleet(rng: np.random.Generator, groups: dict[str, tuple[float, float]], hosts_per_side: int,
          spread: float = 0.08, hours: float = 2.0) -> list[SimHost]:
    """groups: job -> (x86 load, Graviton load); host loads vary +-20 % around them."""
    out = []
    for job, loads in groups.items():
        for arch, load in zip(("x86_64", "arm64"), loads):
            for i in range(hosts_per_side):
                out.append(SimHost(job, f"{job}-{arch}-{i}:9720", arch,
                                   load=load * float(rng.uniform(0.8, 1.2)),
                                   efficiency=float(rng.lognormal(0.0, spread)), hours=hours))
    return out
