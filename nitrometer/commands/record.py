"""`nitrometer record [DEVICE...] --out FILE`: raw pages with timestamps, for later replay."""

from __future__ import annotations

import argparse
import sys
import time

from nitrometer.collectors.base import Clock, parse_source
from nitrometer.collectors.recording import RecordingWriter
from nitrometer.collectors.replay import RecordingEnded
from nitrometer.errors import ConfigError, DeviceError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("devices", nargs="*", metavar="DEVICE",
                        help="devices to record (nvme1n1, /dev/nvme1n1); default: every "
                             "Amazon NVMe device found")
    parser.add_argument("--out", required=True, metavar="FILE", help="recording to write")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                        help="seconds between reads (default 1; devices update once a second)")
    parser.add_argument("--count", type=int, default=0, metavar="N",
                        help="stop after N reads of every device (default: until Ctrl+C)")
    parser.add_argument("--source", default="ioctl", type=parse_source,
                        help="ioctl | nvme-cli | replay:FILE | simulate:TYPE[:SCENARIO[:EBS,...]]")


def record(sources, writer: RecordingWriter, clock: Clock, interval: float, count: int,
           stderr=sys.stderr) -> int:
    """Read every source each interval and append the pages; returns the pages written."""
    failing: set[str] = set()
    active = list(sources)
    written, rounds = 0, 0
    deadline = clock.monotonic()
    while active and (count <= 0 or rounds < count):
        for source in list(active):
            name = source.device.name
            try:
                page, mono = source.read()
            except DeviceError as exc:
                if isinstance(exc, RecordingEnded):
                    active.remove(source)
                elif name not in failing:  # once when it starts failing, once when it recovers
                    failing.add(name)
                    print(f"nitrometer: {exc}", file=stderr)
                continue
            if name in failing:
                failing.discard(name)
                print(f"nitrometer: {name}: readable again", file=stderr)
            writer.add_page(source.device, page, mono, time.time())
            written += 1
        writer.flush()
        rounds += 1
        if count <= 0 or rounds < count:
            deadline += interval
            clock.sleep_until(deadline)
    return written


def run(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise ConfigError(f"--interval {args.interval}: must be more than 0 seconds")
    if args.count < 0:
        raise ConfigError(f"--count {args.count}: must be 0 (no limit) or more")
    from nitrometer.collectors.sources import open_sources

    clock = Clock()
    sources = open_sources(args.source, args.devices, clock=clock)
    if not sources:
        raise DeviceError("no Amazon NVMe devices found to record")
    written = 0
    try:
        with RecordingWriter(args.out) as writer:
            try:
                written = record(sources, writer, clock, args.interval, args.count)
            except KeyboardInterrupt:
                written = -1
    finally:
        for source in sources:
            source.close()
    if written >= 0:
        print(f"nitrometer: recorded {written} pages of {len(sources)} devices to {args.out}",
              file=sys.stderr)
    return 0
