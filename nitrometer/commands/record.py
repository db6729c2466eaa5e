"""`nitrometer record [DEVICE...] --out FILE`: raw pages with timestamps, for later replay."""

from __future__ import annotations

import argparse
import sys

from nitrometer.collectors.recording import RecordingWriter
from nitrometer.commands import devices
from nitrometer.commands.headroom import add_limit_options
from nitrometer.errors import ConfigError, DeviceError
from nitrometer.sampling import SourceEnded
from nitrometer.timefmt import parse_interval


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("devices", nargs="*", metavar="DEVICE",
                        help="devices to record (nvme1n1, /dev/nvme1n1); default: every "
                             "Amazon NVMe device found")
    parser.add_argument("--out", required=True, metavar="FILE", help="recording to write")
    parser.add_argument("--interval", default="1", metavar="SECONDS",
                        help="whole seconds between reads, 1 to 3600 (default 1, the least: "
                        "devices update once a second)")
    parser.add_argument("--count", type=int, default=None, metavar="N",
                        help="stop after N reads of every device, N at least 1 as iostat's "
                        "COUNT (default: until Ctrl+C)")
    add_limit_options(parser, recorded=True)
    devices.add_source_options(parser)


def context_of(args, engine) -> dict:
    """What replay needs to show % of limits: the instance type, each volume's limits."""
    from nitrometer.commands.headroom import headroom_for

    limits = headroom_for(args, engine)
    engine.set_instance_type(limits.instance_type)
    volumes = {serial: {"type": v.volume_type, "iops": v.iops, "throughput": v.throughput}
               for serial, v in limits.volumes.items()}
    return {"instance_type": limits.instance_type, "volumes": volumes}


def record(engine, writer: RecordingWriter, count: int | None,
           reporter: devices.Reporter, context: dict | None = None) -> int:
    """Every page the engine reads, appended as it comes; returns the pages written."""
    written, rounds = 0, 0
    try:
        result = devices.first_tick(engine, reporter)
        if context is not None:
            writer.add_context(context)
        while True:
            for device, raw, t in result.readings:
                writer.add_page(device, raw, t, engine.wall(t))
                written += 1
            writer.flush()
            rounds += 1
            if count and rounds >= count:
                break
            result = devices.next_tick(engine, reporter)
    except SourceEnded:
        pass
    return written


def run(args: argparse.Namespace) -> int:
    args.interval = parse_interval("--interval", args.interval)
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count {args.count}: must be a whole number of at least 1 "
                          "(leave --count out to record until Ctrl+C)")
    engine = devices.open_engine(args, args.interval)
    reporter = devices.Reporter()
    written = 0
    try:
        context = context_of(args, engine)  # a bad --instance.type: before the file exists
        with RecordingWriter(args.out) as writer:
            try:
                written = record(engine, writer, args.count, reporter, context)
            except KeyboardInterrupt:
                written = -1
    finally:
        engine.close()
    if written >= 0:
        print(f"nitrometer: recorded {written} pages of {len(engine.trackers)} devices to "
              f"{args.out}", file=sys.stderr)
    if not engine.trackers:
        raise DeviceError("no Amazon NVMe devices found to record")
    return 2 if reporter.failed else 0
