"""Performance-exceeded episodes: runs of intervals in which a limit counted as exceeded.

An episode starts at the first counted interval and ends after `gap` uncounted ones in a row
(or when its device goes away, or sampling stops). While it lasts, an "ongoing" event goes
out every `ongoing_every` seconds, so a limit hit for hours is not news only at its end.
"""

from __future__ import annotations

import math

from nitrometer.timefmt import rfc3339

DEFAULT_GAP = 3  # uncounted intervals that end an episode
DEFAULT_ONGOING_EVERY = 60.0  # seconds between "ongoing" events of a long episode


class _Open:
    __slots__ = ("start", "end", "exceeded_us", "intervals", "quiet", "peak_iops",
                 "peak_tp", "peak_p99", "reported_at")

    def __init__(self, start: float):
        self.start = self.end = self.reported_at = start
        self.exceeded_us = 0
        self.intervals = 0
        self.quiet = 0  # uncounted intervals since the last counted one
        self.peak_iops = self.peak_tp = 0.0
        self.peak_p99 = math.nan


class EpisodeTracker:
    """Per device: which (scope, limit) episodes are open and what they have seen."""

    def __init__(self, device, gap: int = DEFAULT_GAP,
                 ongoing_every: float = DEFAULT_ONGOING_EVERY):
        self.device = device
        self.gap = gap
        self.ongoing_every = ongoing_every
        self.open: dict[tuple[str, str], _Open] = {}
        self.ended_counts: dict[tuple[str, str], int] = {}

    def update(self, start: float, end: float, interval) -> list[dict]:
        """Fold in one interval [start, end] (wall clock); returns the events it causes."""
        counted = interval.throttled()
        if not counted and not self.open:
            return []  # the common case: nothing exceeded, nothing open
        events = []
        iops = throughput = 0.0
        p99 = math.nan
        for op in ("read", "write"):
            stats = interval.op(op)
            iops += stats.iops
            throughput += stats.throughput
            if stats.p99_us is not None and not stats.p99_us * 1e-6 <= p99:
                p99 = stats.p99_us * 1e-6
        for key, us in interval.exceeded_us.items():
            episode = self.open.get(key)
            if key in counted:
                if episode is None:
                    episode = self.open[key] = _Open(start)
                episode.quiet = 0
                episode.intervals += 1
                episode.peak_iops = max(episode.peak_iops, iops)
                episode.peak_tp = max(episode.peak_tp, throughput)
                if not math.isnan(p99) and not p99 <= episode.peak_p99:
                    episode.peak_p99 = p99
            elif episode is None:
                continue
            else:
                episode.quiet += 1
            # Time over the limit counts while the episode is open, counted or not.
            episode.exceeded_us += us
            if key in counted:
                episode.end = end
            if episode.quiet >= self.gap:
                events.append(self._close(key))
            elif end - episode.reported_at >= self.ongoing_every:
                episode.reported_at = end
                events.append(self._event(key, episode, "ongoing", end))
        return events

    def flush(self) -> list[dict]:
        """Close every open episode (device gone, sampling stopped)."""
        return [self._close(key) for key in list(self.open)]

    def _close(self, key: tuple[str, str]) -> dict:
        episode = self.open.pop(key)
        self.ended_counts[key] = self.ended_counts.get(key, 0) + 1
        return self._event(key, episode, "ended", episode.end)

    def _event(self, key: tuple[str, str], episode: _Open, state: str, end: float) -> dict:
        d = self.device
        return {
            "event": "performance_exceeded",
            "state": state,
            "device": d.name,
            "serial": d.serial,
            "kind": d.kind,
            "scope": key[0],
            "limit": key[1],
            "start": rfc3339(episode.start),
            "end": rfc3339(end),
            "seconds_exceeded": round(episode.exceeded_us / 1e6, 6),
            "intervals": episode.intervals,
            "peak_iops": round(episode.peak_iops, 3),
            "peak_throughput_bytes_per_second": round(episode.peak_tp, 3),
            "p99_latency_seconds": None if math.isnan(episode.peak_p99) else episode.peak_p99,
        }
