"""The host's CPU from /proc/stat: busy and iowait over the last interval, and busy and
total CPU-seconds as running totals (counters)."""

from __future__ import annotations

import os

# The first line of /proc/stat, "cpu" then these in clock ticks (proc_stat(5)); older kernels
# stop earlier.
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest",
               "guest_nice")


def cpu_times(proc: str = "/proc") -> dict[str, float]:
    """CPU-seconds of all CPUs by state since boot, as psutil.cpu_times() gives them."""
    with open(f"{proc}/stat", "rb") as f:
        line = f.readline().split()
    if not line or line[0] != b"cpu":
        raise OSError(f"{proc}/stat: no cpu line")
    ticks = os.sysconf("SC_CLK_TCK")
    return {name: int(value) / ticks for name, value in zip(STAT_FIELDS, line[1:])}


class CpuTotals:
    """Running totals of CPU-seconds, summed over all CPUs, from the agent's start."""

    def __init__(self):
        self.busy_seconds = 0.0
        self.cpu_seconds = 0.0

    def add(self, busy: float, total: float) -> dict[str, float]:
        self.busy_seconds += max(busy, 0.0)
        self.cpu_seconds += max(total, 0.0)
        return {"busy_seconds": self.busy_seconds, "cpu_seconds": self.cpu_seconds}


class HostSampler:
    """Ratios (0..1) of CPU time between two calls, summed over all CPUs."""

    def __init__(self, proc: str = "/proc"):
        self.proc = proc
        self._last = cpu_times(proc)
        self.totals = CpuTotals()

    def sample(self) -> dict[str, float]:
        cur = cpu_times(self.proc)
        prev, self._last = self._last, cur
        spent = {name: value - prev.get(name, 0.0) for name, value in cur.items()}
        total = sum(v for v in spent.values() if v > 0)
        if total <= 0:
            return {}
        idle = spent.get("idle", 0.0) + spent.get("iowait", 0.0)
        busy = min(max(1.0 - idle / total, 0.0), 1.0)
        return {
            "busy": busy,
            "iowait": min(max(spent.get("iowait", 0.0) / total, 0.0), 1.0),
            **self.totals.add(busy * total, total),
        }
