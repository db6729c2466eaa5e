"""Performance-exceeded episodes: consecutive exceeded seconds, one JSON line when they end."""

from __future__ import annotations

import json
import logging
import math
import threading
from datetime import datetime, timezone

log = logging.getLogger("nitrometer.events")


def rfc3339(wall: float) -> str:
    stamp = datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class _Open:
    __slots__ = ("start", "end", "exceeded_us", "intervals", "peak_iops", "peak_tp", "peak_p99")

    def __init__(self, start: float):
        self.start = self.end = start
        self.exceeded_us = 0
        self.intervals = 0
        self.peak_iops = self.peak_tp = 0.0
        self.peak_p99 = math.nan


class EpisodeTracker:
    """Per device: which (scope, limit) episodes are open and what they have seen so far."""

    def __init__(self, device):
        self.device = device
        self.open: dict[tuple[str, str], _Open] = {}
        self.ended_counts: dict[tuple[str, str], int] = {}

    def update(self, start: float, end: float, exceeded: dict, latest: dict) -> list[dict]:
        """One interval [start, end] (wall clock) with its exceeded microseconds per limit."""
        ended = []
        ops = latest.get("ops", {})
        iops = sum(v["iops"] for v in ops.values())
        throughput = sum(v["throughput"] for v in ops.values())
        p99s = [v["quantiles"].get(0.99, math.nan) for v in ops.values()]
        p99 = max((p for p in p99s if not math.isnan(p)), default=math.nan)
        for key, us in exceeded.items():
            episode = self.open.get(key)
            if us > 0:
                if episode is None:
                    episode = self.open[key] = _Open(start)
                episode.end = end
                episode.exceeded_us += us
                episode.intervals += 1
                episode.peak_iops = max(episode.peak_iops, iops)
                episode.peak_tp = max(episode.peak_tp, throughput)
                if not math.isnan(p99) and not p99 <= episode.peak_p99:
                    episode.peak_p99 = p99
            elif episode is not None:
                ended.append(self._close(key))
        return ended

    def flush(self) -> list[dict]:
        """Close every open episode (device gone, agent stopping)."""
        return [self._close(key) for key in list(self.open)]

    def _close(self, key: tuple[str, str]) -> dict:
        episode = self.open.pop(key)
        self.ended_counts[key] = self.ended_counts.get(key, 0) + 1
        d = self.device
        return {
            "event": "performance_exceeded",
            "device": d.name,
            "serial": d.serial,
            "kind": d.kind,
            "scope": key[0],
            "limit": key[1],
            "start": rfc3339(episode.start),
            "end": rfc3339(episode.end),
            "seconds_exceeded": round(episode.exceeded_us / 1e6, 6),
            "intervals": episode.intervals,
            "peak_iops": round(episode.peak_iops, 3),
            "peak_throughput_bytes_per_second": round(episode.peak_tp, 3),
            "p99_latency_seconds": None if math.isnan(episode.peak_p99) else episode.peak_p99,
        }


class EventSink:
    """Writes each ended episode to the log and, when configured, appends it to a file."""

    def __init__(self, path: str | None = None):
        self.path = path
        self._lock = threading.Lock()
        self._file = None
        self.written = 0

    def reopen(self, path: str | None = None) -> None:
        """After SIGHUP: a new path, or the same one again after log rotation."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self.path = path

    def write(self, episodes: list[dict]) -> None:
        for episode in episodes:
            line = json.dumps(episode, sort_keys=True)
            log.info("%s", line)
            if self.path:
                with self._lock:
                    try:
                        if self._file is None:
                            self._file = open(self.path, "a", buffering=1, encoding="utf-8")
                        self._file.write(line + "\n")
                    except OSError as exc:
                        log.error("events.file %s: %s", self.path, exc.strerror)
                        self._file = None
            self.written += 1

    def close(self) -> None:
        self.reopen(self.path)
