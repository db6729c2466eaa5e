"""Host context beside the device numbers: CPU busy and iowait over the last interval."""

from __future__ import annotations


class HostSampler:
    """Ratios (0..1) of CPU time between two calls, summed over all CPUs (psutil)."""

    def __init__(self):
        import psutil

        self._psutil = psutil
        self._last = psutil.cpu_times()

    def sample(self) -> dict[str, float]:
        cur = self._psutil.cpu_times()
        prev, self._last = self._last, cur
        spent = {name: getattr(cur, name) - getattr(prev, name) for name in cur._fields}
        total = sum(v for v in spent.values() if v > 0)
        if total <= 0:
            return {}
        idle = spent.get("idle", 0.0) + spent.get("iowait", 0.0)
        return {
            "busy": min(max(1.0 - idle / total, 0.0), 1.0),
            # iowait exists on Linux only; elsewhere it is reported as 0.
            "iowait": min(max(spent.get("iowait", 0.0) / total, 0.0), 1.0),
        }
