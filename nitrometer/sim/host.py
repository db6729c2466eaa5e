"""The simulated host's CPU: busy time follows the IO its devices did.

Each IO costs the CPU a fixed time; a Graviton host (arm64) needs GRAVITON_CPU_SAVING less of
it for the same IO. That is the simulated fleet's known truth: at equal CPU utilisation a
Graviton host does 1 / (1 - saving) times the work, so it needs `saving` fewer normalized
instance hours for the same work, and `nitrometer savings --measured` should find it.
"""

from __future__ import annotations

from collections.abc import Callable

from nitrometer.collectors.host import CpuTotals

X86_CPU_SECONDS_PER_IO = 30e-6
GRAVITON_CPU_SAVING = 1 / 3  # Graviton needs a third less CPU for the same IO
MIN_VCPUS = 2


def vcpus(normalization_factor: float | None) -> int:
    """vCPUs as the size implies: 2 per normalization unit of 4 (xlarge: 8 -> 4 vCPUs)."""
    if not normalization_factor:
        return MIN_VCPUS
    return max(int(round(normalization_factor / 2)), MIN_VCPUS)


def cpu_seconds_per_io(arch: str, saving: float = GRAVITON_CPU_SAVING) -> float:
    return X86_CPU_SECONDS_PER_IO * ((1 - saving) if arch == "arm64" else 1.0)


class SimulatedCpu:
    """Host metrics like HostSampler's, from the IOs done since the last call.

    ios() returns the host's IOs (reads + writes, all devices) so far; time is the agent's
    clock. Busy time is capped at the CPUs' capacity: past it, the model is saturated."""

    def __init__(self, ios: Callable[[], float], monotonic: Callable[[], float], *, arch: str,
                 normalization_factor: float | None, saving: float = GRAVITON_CPU_SAVING):
        self.ios = ios
        self.monotonic = monotonic
        self.cpus = vcpus(normalization_factor)
        self.cost = cpu_seconds_per_io(arch, saving)
        self.totals = CpuTotals()
        self._last_ios = ios()
        self._last_time = monotonic()

    def sample(self) -> dict[str, float]:
        now, done = self.monotonic(), self.ios()
        capacity = self.cpus * (now - self._last_time)
        if capacity <= 0:
            return {}  # no time has passed: these IOs count in the next sample
        new_ios = max(done - self._last_ios, 0.0)
        self._last_time, self._last_ios = now, done
        busy = min(new_ios * self.cost, capacity)
        return {"busy": busy / capacity, "iowait": 0.0, **self.totals.add(busy, capacity)}
