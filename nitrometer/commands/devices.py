"""What the device commands share: the source options, the engine they all run, and how
device trouble is said on stderr (once when a device starts failing, once when it is back)."""

from __future__ import annotations

import argparse
import sys

from nitrometer.errors import ConfigError, DeviceError
from nitrometer.sampling import (
    DEFAULT_EXCEEDED_SHARE,
    Engine,
    SourceEnded,
    TickResult,
    build_engine,
)
from nitrometer.timefmt import parse_share

LIVE_KINDS = ("ioctl", "nvme-cli")
# Replay and simulation pace: slower than a hundredth would stretch a 1 s tick past timers.
MIN_SPEED, MAX_SPEED = 0.01, 1e6


def add_source_options(parser: argparse.ArgumentParser, *, speed_default: float = 1.0,
                       source: bool = True) -> None:
    if source:
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
    parser.add_argument("--exceeded.min-share", dest="exceeded_share", metavar="SHARE",
                        default=f"{DEFAULT_EXCEEDED_SHARE:.0%}",
                        help="share of an interval over a limit that counts it as exceeded "
                        "(default %(default)s, as the agent)")


def make_clock(speed: float):
    from nitrometer.collectors.base import Clock, FastClock

    if not (speed == 0 or MIN_SPEED <= speed <= MAX_SPEED):  # also nan and infinity
        raise ConfigError(f"--speed {speed:g}: 0 (as fast as possible) or from "
                          f"{MIN_SPEED:g} to {MAX_SPEED:.0f} times real time")
    return Clock() if speed == 1 else FastClock(speed)


def open_sources(args: argparse.Namespace, clock) -> list:
    """The sources named by --source and DEVICE arguments; DeviceError when one is unusable."""
    from nitrometer.collectors.base import parse_source
    from nitrometer.sampling.sources import open_sources as open_page_sources

    spec = parse_source(args.source)
    if spec.kind in LIVE_KINDS and args.speed != 1:
        raise ConfigError("--speed applies to simulate and replay sources only")
    sources = open_page_sources(spec, list(getattr(args, "devices", []) or []),
                                sysfs_root=args.path_sysfs, dev_root=args.path_dev, clock=clock)
    if not sources:
        raise DeviceError(f"no EC2 NVMe devices found (looked in {args.path_sysfs}/class/nvme)")
    return sources


def open_engine(args: argparse.Namespace, interval: float = 1.0, wrap=None) -> Engine:
    """The same engine the agent runs, over the sources the command line names (each list
    passed through `wrap` when given)."""
    from nitrometer.collectors.base import parse_source

    spec = parse_source(args.source)
    share = parse_share("--exceeded.min-share", getattr(args, "exceeded_share",
                                                          DEFAULT_EXCEEDED_SHARE))
    clock = make_clock(args.speed)
    sources = open_sources(args, clock)
    return build_engine(wrap(sources) if wrap else sources, interval=interval,
                        exceeded_share=share, recording=spec.kind == "replay", clock=clock,
                        threaded=spec.kind in LIVE_KINDS)


class Reporter:
    """Says device trouble on stderr, one line each, and remembers whether there was any."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.failed = False

    def tick(self, result: TickResult) -> None:
        for _device, exc, first in result.failed:
            self.failed = True
            if first:
                print(f"nitrometer: {exc}; showing the other devices", file=self.stream)
        for device in result.recovered:
            print(f"nitrometer: {device.name} is readable again", file=self.stream)


def first_tick(engine: Engine, reporter: Reporter) -> TickResult:
    """The first read of every device: the baselines. With no device readable, the first
    failure is the command's one-line error."""
    engine.wait_next()  # starts the schedule: the next tick is one interval after this
    result = engine.tick()
    if result.failed and not result.baselines:
        raise DeviceError(str(result.failed[0][1]))
    if not result.baselines and engine.finished:
        raise SourceEnded("the recording has no pages")
    reporter.tick(result)
    return result


def next_tick(engine: Engine, reporter: Reporter) -> TickResult:
    """The next tick on schedule; SourceEnded when a recording has run out everywhere, and
    DeviceError when every device is failing."""
    if engine.finished:
        raise SourceEnded("end of recording")
    engine.wait_next()
    result = engine.tick()
    trackers = list(engine.trackers.values())
    if len(trackers) == 1 and result.failed:
        raise DeviceError(str(result.failed[0][1]))
    reporter.tick(result)
    if result.failed and not result.intervals and not any(t.up for t in trackers):
        raise DeviceError(f"every device is failing; {result.failed[0][1]}")
    if engine.finished and not result.intervals:
        raise SourceEnded("end of recording")
    return result
