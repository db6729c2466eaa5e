"""The host's CPU as psutil sees it: busy and iowait over the last interval, and busy and
total CPU-seconds as running totals (counters)."""

from __future__ import annotations


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
    """Ratios (0..1) of CPU time between two calls, summed over all CPUs (psutil)."""

    def __init__(self):
        import psutil

        self._psutil = psutil
        self._last = psutil.cpu_times()
        self.totals = CpuTotals()

    def sample(self) -> dict[str, float]:
        cur = self._psutil.cpu_times()
        prev, self._last = self._last, cur
        spent = {name: getattr(cur, name) - getattr(prev, name) for name in cur._fields}
        total = sum(v for v in spent.values() if v > 0)
        if total <= 0:
            return {}
        idle = spent.get("idle", 0.0) + spent.get("iowait", 0.0)
        busy = min(max(1.0 - idle / total, 0.0), 1.0)
        return {
            "busy": busy,
            # iowait exists on Linux only; elsewhere it is reported as 0.
            "iowait": min(max(spent.get("iowait", 0.0) / total, 0.0), 1.0),
            **self.totals.add(busy * total, total),
        }
