"""Interval sampling shared by snapshot, diagnose and replay: sources in, per-device deltas out.

The C core does the arithmetic (nitrometer.native.summarize); this module only keeps the
previous page per device, paces reads on the source's clock and turns counts into rates.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field

from nitrometer import native
from nitrometer.errors import ConfigError, DeviceError
from nitrometer.logpage import EXCEEDED_COUNTERS, exceeded_limits

QUANTILES = (0.5, 0.99, 0.999)
EXCEEDED = tuple((scope, limit, counter)  # (scope, limit, page counter)
                 for (scope, limit), counter in EXCEEDED_COUNTERS.items())
OPS = ("read", "write")
CATCH_UP_SLACK = 0.25  # seconds
# Exceeded time under 1 % of an interval is a brush with the limit, not throttling worth
# a line of text (JSON still carries every microsecond).
EXCEEDED_MIN_SHARE = 0.01


def nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


@dataclass(frozen=True)
class OpStats:
    """One direction (read or write) over an interval; latencies in microseconds."""

    ops: int
    bytes: int
    time_us: int
    seconds: float
    p50_us: float | None
    p99_us: float | None
    p999_us: float | None

    @property
    def iops(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0

    @property
    def mean_us(self) -> float | None:
        return self.time_us / self.ops if self.ops else None


@dataclass(frozen=True)
class BandStats:
    low: int
    high: int | None
    read_ops: int
    write_ops: int
    read_q: tuple[float | None, ...]  # QUANTILES order
    write_q: tuple[float | None, ...]

    @property
    def label(self) -> str:
        """Short column label: <=512, <=4K ... and >32K for the open-ended band."""
        if self.high is None:
            return f">{native.format_size(self.low)}"
        return f"<={native.format_size(self.high)}"


@dataclass(frozen=True)
class Interval:
    """What one device did between two reads."""

    device: object  # collectors.base.Device
    start: float  # seconds since sampling began (source clock)
    seconds: float
    summary: native.Summary
    page: native.Page  # the later page (queue length is point in time)

    @property
    def end(self) -> float:
        return self.start + self.seconds

    @property
    def reset(self) -> bool:
        return self.summary.reset

    def op(self, name: str) -> OpStats:
        d = self.summary.delta
        q = self.summary.read_q if name == "read" else self.summary.write_q
        return OpStats(d[f"total_{name}_ops"], d[f"total_{name}_bytes"], d[f"total_{name}_time"],
                       self.seconds, *(nan_to_none(v) for v in q))

    @property
    def exceeded_us(self) -> dict[tuple[str, str], int]:
        d = self.summary.delta
        return {(scope, limit): d[counter] for scope, limit, counter in EXCEEDED}

    def exceeded_fraction(self, key: tuple[str, str]) -> float:
        return self.exceeded_us[key] / (self.seconds * 1e6) if self.seconds > 0 else 0.0

    def throttled(self, kind: str | None = None) -> list[tuple[str, str]]:
        """The (scope, limit) pairs exceeded for a meaningful share of this interval."""
        limits = EXCEEDED_COUNTERS if kind is None else exceeded_limits(kind)
        return [key for key in limits if self.exceeded_fraction(key) >= EXCEEDED_MIN_SHARE]

    @property
    def queue_length(self) -> int:
        return self.page["volume_queue_length"]

    @property
    def bands(self) -> list[BandStats]:
        s = self.summary
        return [
            BandStats(band.low, band.high, band.read.total, band.write.total,
                      tuple(nan_to_none(v) for v in s.band_read_q[i]),
                      tuple(nan_to_none(v) for v in s.band_write_q[i]))
            for i, band in enumerate(s.delta.bands)
        ]


def decode_for(device, raw: bytes) -> native.Page:
    """Decode a device's page; a refusal becomes one line naming the device."""
    try:
        return native.decode(raw)
    except native.PageError as exc:
        name = getattr(device, "name", "device")
        if exc.code == native.lib.NM_EMAGIC:
            raise DeviceError(f"{name}: not an EC2 NVMe device (its 0xD0 page has no "
                              "Amazon statistics magic)") from None
        if exc.code == native.lib.NM_EVERSION:
            version = int.from_bytes(raw[4:8], "little") if len(raw) >= 8 else -1
            raise DeviceError(f"{name}: unsupported statistics page version {version}") from None
        raise DeviceError(f"{name}: unreadable statistics page: {exc}") from None


class SourceEnded(Exception):
    """A replayed recording ran out of pages."""


def _read(source) -> tuple[bytes, float]:
    try:
        return source.read()
    except (EOFError, StopIteration):
        raise SourceEnded(source.device.name) from None
    except DeviceError as exc:
        from nitrometer.collectors.replay import RecordingEnded

        if isinstance(exc, RecordingEnded):
            raise SourceEnded(str(exc)) from None
        raise


@dataclass
class Sampler:
    """Reads every source each `interval` seconds on the sources' clock."""

    sources: list
    clock: object
    interval: float = 1.0
    # Recordings hand out the next page whenever asked: skip pages until INTERVAL of
    # recorded time has passed (less a little, for the recorder's jitter).
    catch_up: bool = False
    # Devices failing right now (id(source) -> message), and whether any failed at all:
    # the others go on being shown, and the command ends with status 2.
    failing: dict = field(default_factory=dict)
    failed: bool = False
    _prev: dict = field(default_factory=dict)
    _t0: float = 0.0
    _next: float = 0.0

    def first(self) -> list[tuple[object, native.Page]]:
        """Read every device once: the baseline for intervals (and the cumulative view)."""
        pages = []
        for source in self.sources:
            raw, when = _read(source)
            page = decode_for(source.device, raw)
            self._prev[id(source)] = (page, when)
            pages.append((source.device, page))
        self._t0 = min((w for _, w in self._prev.values()), default=self.clock.monotonic())
        self._next = self.clock.monotonic() + self.interval
        return pages

    def step(self) -> list[Interval]:
        """Sleep until the next deadline, then one Interval per device."""
        self.clock.sleep_until(self._next)
        self._next += self.interval
        now = self.clock.monotonic()
        if self._next <= now:  # fell behind (slow device): skip ahead, never burst
            self._next = now + self.interval
        out = []
        for source in self.sources:
            try:
                interval = self._interval(source)
            except DeviceError as exc:
                if len(self.sources) == 1:
                    raise
                self._failed(source, exc)
                continue
            if interval is not None:
                out.append(interval)
        if len(self.failing) == len(self.sources):
            raise DeviceError(f"every device is failing; {next(iter(self.failing.values()))}")
        return out

    def _interval(self, source) -> Interval | None:
        prev, prev_when = self._prev[id(source)]
        raw, when = _read(source)
        while self.catch_up and when - prev_when < self.interval - CATCH_UP_SLACK:
            raw, when = _read(source)
        page = decode_for(source.device, raw)
        self._prev[id(source)] = (page, when)
        if self.failing.pop(id(source), None) is not None:
            print(f"nitrometer: {source.device.name} is readable again", file=sys.stderr)
            return None  # the gap while it failed is no interval: start afresh
        try:
            summary = native.summarize(prev, page, QUANTILES)
        except native.PageError as exc:
            raise DeviceError(f"{source.device.name}: page layout changed between "
                              f"reads ({exc})") from None
        seconds = max(when - prev_when, 1e-9)
        return Interval(source.device, prev_when - self._t0, seconds, summary, page)

    def _failed(self, source, exc: DeviceError) -> None:
        """Said once when a device starts failing; the other devices go on."""
        self.failed = True
        if id(source) not in self.failing:
            print(f"nitrometer: {exc}; showing the other devices", file=sys.stderr)
        self.failing[id(source)] = str(exc)

    def close(self) -> None:
        for source in self.sources:
            close = getattr(source, "close", None)
            if close:
                close()


# --- options and sources shared by the commands ---------------------------------------

def add_source_options(parser: argparse.ArgumentParser, *, speed_default: float = 1.0) -> None:
    parser.add_argument("--source", default="ioctl", metavar="SPEC",
                        help="ioctl (default), nvme-cli, replay:FILE or "
                        "simulate:TYPE[:SCENARIO[:EBS,...]]")
    parser.add_argument("--path.sysfs", dest="path_sysfs", default="/sys", metavar="DIR",
                        help="sysfs mount point (default /sys)")
    parser.add_argument("--path.dev", dest="path_dev", default="/dev", metavar="DIR",
                        help="device directory (default /dev)")
    parser.add_argument("--speed", type=float, default=speed_default, metavar="X",
                        help="for simulate/replay sources: X times real time, 0 = as fast "
                        f"as possible (default {speed_default:g})")


def make_clock(speed: float):
    from nitrometer.collectors.base import Clock, FastClock

    if speed < 0:
        raise ConfigError(f"--speed {speed:g}: must be 0 or more")
    return Clock() if speed == 1 else FastClock(speed)


def open_sampler(args: argparse.Namespace, interval: float = 1.0) -> Sampler:
    """A sampler over the sources --source and the DEVICE arguments name."""
    from nitrometer.collectors.base import parse_source

    spec = parse_source(args.source)
    clock = make_clock(args.speed)
    return Sampler(open_sources(args, clock), clock, interval, catch_up=spec.kind == "replay")


def open_sources(args: argparse.Namespace, clock) -> list:
    """The sources named by --source and DEVICE arguments; DeviceError when one is unusable."""
    from nitrometer.collectors.base import parse_source
    from nitrometer.collectors.sources import open_sources as open_page_sources

    spec = parse_source(args.source)
    if spec.kind in ("ioctl", "nvme-cli") and args.speed != 1:
        raise ConfigError("--speed applies to simulate and replay sources only")
    sources = open_page_sources(spec, list(getattr(args, "devices", []) or []),
                                sysfs_root=args.path_sysfs, dev_root=args.path_dev, clock=clock)
    if not sources:
        raise DeviceError(f"no EC2 NVMe devices found (looked in {args.path_sysfs}/class/nvme)")
    return sources
