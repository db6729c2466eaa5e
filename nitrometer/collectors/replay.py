"""Plays a recording back, one source per recorded device, on the caller's clock.

Pages come back in recorded order. Each read waits (on the clock) until the page is due:
at recorded speed, `speed` times faster, or not at all with speed 0. The time returned is
the recorded time shifted to the replay's start, so rates computed from it are the
recorded rates whatever the speed.
"""

from __future__ import annotations

import threading
from collections import deque

from nitrometer.collectors.base import Clock, Device, PageSource
from nitrometer.collectors.recording import PageRecord, Recording
from nitrometer.errors import DeviceError, NitrometerError


class RecordingEnded(DeviceError):
    """The recording has no more pages for this device."""


class _Feed:
    """One pass over the file shared by every device's source."""

    def __init__(self, recording: Recording, clock: Clock, speed: float):
        self.recording = recording
        self.clock = clock
        self.speed = speed
        self.start = clock.monotonic()
        self.first: float | None = None
        self.pending: dict[int, deque[PageRecord]] = {
            i: deque() for i in range(len(recording.devices))}
        self._records = iter(recording)
        self.lock = threading.Lock()
        self.open_sources = len(recording.devices)
        self.closed: set[int] = set()  # devices no one reads: their pages are skipped

    def next_for(self, index: int) -> PageRecord | None:
        with self.lock:
            queue = self.pending[index]
            while not queue:
                record = next(self._records, None)
                if record is None:
                    return None
                if self.first is None:
                    self.first = record.monotonic
                if record.device_index not in self.closed:
                    self.pending[record.device_index].append(record)
            return queue.popleft()

    def replay_time(self, record: PageRecord) -> float:
        first = record.monotonic if self.first is None else self.first  # 0.0 is a time too
        return self.start + (record.monotonic - first)

    def release(self, index: int) -> None:
        with self.lock:
            self.closed.add(index)
            self.pending[index].clear()
            self.open_sources -= 1
            if self.open_sources == 0:
                self.recording.close()


class ReplaySource:
    def __init__(self, feed: _Feed, index: int, device: Device):
        self.feed = feed
        self.index = index
        self.device = device
        self._closed = False

    @property
    def recorded_instance_type(self) -> str:
        return str(self.feed.recording.context.get("instance_type") or "")

    @property
    def volume_limits(self):
        """The volume's provisioned limits as recorded; None when the recording has none."""
        from nitrometer.ec2 import VolumeLimits

        facts = self.feed.recording.context.get("volumes", {}).get(self.device.serial)
        if not isinstance(facts, dict):
            return None
        return VolumeLimits(str(facts.get("type") or ""), facts.get("iops"),
                            facts.get("throughput"), "recording")

    @property
    def lost_bytes(self) -> int:
        return self.feed.recording.lost_bytes

    @property
    def warning(self) -> str:
        return self.feed.recording.warning

    def read(self) -> tuple[bytes, float]:
        if self._closed:
            raise NitrometerError(f"{self.device.name}: replay source is closed")
        record = self.feed.next_for(self.index)
        if record is None:
            raise RecordingEnded(f"{self.device.name}: end of recording "
                                 f"{self.feed.recording.path}")
        when = self.feed.replay_time(record)
        if self.feed.speed:
            offset = when - self.feed.start
            self.feed.clock.sleep_until(self.feed.start + offset / self.feed.speed)
        return record.page, when

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.feed.release(self.index)


def replay_sources(path: str, clock: Clock, speed: float = 1.0) -> list[PageSource]:
    if speed < 0:
        raise NitrometerError(f"replay speed {speed} must be 0 (as fast as possible) or more")
    recording = Recording(path)
    if not recording.devices:
        recording.close()
        raise NitrometerError(f"{path}: the recording holds no devices")
    feed = _Feed(recording, clock, speed)
    return [ReplaySource(feed, i, d) for i, d in enumerate(recording.devices)]
