"""Who drove a device: per-workload counters with bounded cardinality, and the share of
each exceeded episode's IO each workload did.

Cardinality rule (the exported series of one device):
- the top K workloads by ops (reads + writes) over the last minute each have a series;
  the rest add to one `other` series;
- a workload that leaves the top K keeps its series, frozen at what it had counted, so the
  counter stays monotonic; what it does from then on goes to `other`. Back in the top K
  before it goes stale, it counts on in the same series;
- a frozen series is dropped after `stale_after` seconds out of the top K (5 minutes), and
  at most K frozen series are kept (the longest frozen go first): a device never has more
  than 2K + 1 series, and K + 1 while the ranking holds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

OTHER = "other"
DEFAULT_TOP = 5
RANK_WINDOW = 60.0  # seconds of ops the ranking looks at
STALE_AFTER = 300.0
FIELDS = ("read_ops", "write_ops", "read_bytes", "write_bytes")


@dataclass
class Series:
    counts: list
    left_at: float | None = None  # None: in the top K


class TopWorkloads:
    """One device's exported workload counters."""

    def __init__(self, top: int = DEFAULT_TOP, window: float = RANK_WINDOW,
                 stale_after: float = STALE_AFTER, width: int = len(FIELDS)):
        self.top = top
        self.window = window
        self.stale_after = stale_after
        self.width = width  # values per delta: the four FIELDS, and any the caller adds
        self.series: dict[str, Series] = {OTHER: Series([0] * width)}
        self._recent: deque = deque()  # (time, {workload: ops})
        self._window_ops: dict[str, int] = {}

    def ranked(self) -> list[str]:
        """Workloads by ops over the window, most first (ties by name: a stable order)."""
        return sorted((w for w, ops in self._window_ops.items() if ops > 0),
                      key=lambda w: (-self._window_ops[w], w))

    def add(self, now: float, deltas: dict[str, tuple]) -> None:
        """One tick's growth per workload: (read ops, write ops, read bytes, write bytes,
        and the `width` - 4 values more the caller counts alike)."""
        ops = {w: d[0] + d[1] for w, d in deltas.items() if d[0] + d[1]}
        self._recent.append((now, ops))
        for w, n in ops.items():
            self._window_ops[w] = self._window_ops.get(w, 0) + n
        while self._recent and self._recent[0][0] <= now - self.window:
            _, old = self._recent.popleft()
            for w, n in old.items():
                left = self._window_ops[w] - n
                if left:
                    self._window_ops[w] = left
                else:
                    del self._window_ops[w]
        top = set(self.ranked()[: self.top])
        for name, series in self.series.items():
            if name == OTHER:
                continue
            if name in top:
                series.left_at = None
            elif series.left_at is None:
                series.left_at = now
        for name in top:
            if name not in self.series:
                self.series[name] = Series([0] * self.width)
        for name, delta in deltas.items():
            target = self.series[name] if name in top else self.series[OTHER]
            for i, value in enumerate(delta):
                target.counts[i] += value
        self._expire(now)

    def _expire(self, now: float) -> None:
        frozen = sorted((s.left_at, name) for name, s in self.series.items()
                        if name != OTHER and s.left_at is not None)
        for i, (left_at, name) in enumerate(frozen):
            if now - left_at >= self.stale_after or len(frozen) - i > self.top:
                del self.series[name]

    def counters(self) -> dict[str, tuple]:
        return {name: tuple(s.counts) for name, s in self.series.items()}


class EpisodeShares:
    """One device's exceeded intervals, split by workload: read and write ops of each
    workload against the device's own ops in those intervals. An episode is a run of
    exceeded intervals that `gap` intervals in a row not exceeded end (the episodes'
    rule); the last episode's shares stay until the next one starts."""

    def __init__(self, gap: int = 3):
        self.gap = gap
        self.ongoing = False
        self.seconds = 0.0  # exceeded intervals' length in the current or last episode
        self.device_ops = [0, 0]  # read, write
        self.workload_ops: dict[str, list] = {}
        self._quiet = 0

    def add(self, interval, deltas: dict[str, tuple]) -> None:
        if not interval.throttled():
            self._quiet += 1
            if self.ongoing and self._quiet >= self.gap:
                self.ongoing = False
            return
        if not self.ongoing:
            self.ongoing = True
            self.seconds = 0.0
            self.device_ops = [0, 0]
            self.workload_ops = {}
        self._quiet = 0
        self.seconds += interval.seconds
        self.device_ops[0] += interval.op("read").ops
        self.device_ops[1] += interval.op("write").ops
        for name, d in deltas.items():
            ops = self.workload_ops.setdefault(name, [0, 0])
            ops[0] += d[0]
            ops[1] += d[1]

    def shares(self) -> dict[str, tuple[float, float, float]]:
        """workload -> (read share, write share, share of all ops), each 0..1 of the
        device's ops in the episode's exceeded intervals."""
        reads, writes = self.device_ops
        out = {}
        for name, (r, w) in self.workload_ops.items():
            out[name] = (min(r / reads, 1.0) if reads else 0.0,
                         min(w / writes, 1.0) if writes else 0.0,
                         min((r + w) / (reads + writes), 1.0) if reads + writes else 0.0)
        return out

    def top(self, n: int, which: int = 2) -> list[tuple[str, float]]:
        """The n workloads with the largest share (0 read, 1 write, 2 all), largest first."""
        ranked = sorted(((s[which], name) for name, s in self.shares().items() if s[which]),
                        key=lambda p: (-p[0], p[1]))
        return [(name, share) for share, name in ranked[:n]]
