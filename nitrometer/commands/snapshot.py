"""`nitrometer snapshot [DEVICE...] [INTERVAL [COUNT]]`: iostat for EC2 NVMe statistics.

Without INTERVAL: each device's cumulative counters and latency histograms. With INTERVAL:
one row per device per interval, the first after INTERVAL seconds. --json writes JSON Lines
in the schema of docs/snapshot-json.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from nitrometer import native
from nitrometer.commands import devices, view
from nitrometer.commands.headroom import Headroom, add_limit_options, headroom_for
from nitrometer.errors import EXIT_USAGE, ConfigError, DeviceError
from nitrometer.sampling import Interval, SourceEnded
from nitrometer.timefmt import parse_interval


def add_view_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("operands", nargs="*", metavar="DEVICE|INTERVAL|COUNT",
                        help="[DEVICE...] [INTERVAL [COUNT]]: devices (name, /dev path or "
                        "serial; default: all), then seconds between rows (whole seconds, 1 to "
                        "3600) and how many rows")
    parser.add_argument("-d", "--details", action="store_true",
                        help="add the IO-size bands (instance store): per-band p99 per row")
    parser.add_argument("-j", "--json", action="store_true",
                        help="JSON Lines: one object per device per interval")
    parser.add_argument("-z", "--skip-idle", action="store_true",
                        help="leave out devices with no IO and no limit exceeded in an interval")
    add_limit_options(parser)


def configure(parser: argparse.ArgumentParser) -> None:
    add_view_options(parser)
    devices.add_source_options(parser)


def split_operands(operands: list[str]) -> tuple[list[str], float | None, int | None]:
    """iostat style: numbers are INTERVAL then COUNT, wherever they stand; everything else
    names a device (device names and serials are never plain numbers)."""
    numbers = [x for x in operands if _is_number(x)]
    devices = [x for x in operands if not _is_number(x)]
    if len(numbers) > 2:
        raise ConfigError(f"{' '.join(numbers)}: at most two numbers, INTERVAL [COUNT]")
    interval = count = None
    if numbers:
        interval = parse_interval(f"INTERVAL {numbers[0]}", float(numbers[0]))
    if len(numbers) == 2:
        if not numbers[1].isdigit() or int(numbers[1]) < 1:
            raise ConfigError(f"COUNT {numbers[1]}: must be a whole number of at least 1")
        count = int(numbers[1])
    return devices, interval, count


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- JSON records -----------------------------------------------------------------------

def cumulative_record(device, page: native.Page, wall: float, *, view_name: str = "cumulative",
                      seconds: float | None = None) -> dict:
    """A page as totals; `recording` views (replay) also carry the span they cover."""
    record = Interval.from_page(device, page, seconds).to_json(view_name, wall, seconds or 0.0)
    if view_name == "cumulative":
        # The page itself too, under `nitrometer decode --json`'s (nvme-cli's) keys.
        record.update(page.to_dict(), serial=device.serial, model=device.model)
    return record


def interval_record(iv: Interval, wall0: float, t0: float) -> dict:
    """wall0 + a time on the engine's clock is wall time; t0 is when sampling began."""
    return iv.to_json("interval", wall0 + iv.end, iv.end - t0)


def write_json(record: dict, out) -> None:
    out.write(json.dumps(record, separators=(",", ":")) + "\n")


# --- running ----------------------------------------------------------------------------

def show_cumulative(pages, args, out, style, *, note: str = "") -> None:
    wall = time.time()
    for i, (device, page) in enumerate(pages):
        if args.json:
            write_json(cumulative_record(device, page, wall), out)
        else:
            if i:
                out.write("\n")
            out.write(view.render_cumulative(device, page, style, details=args.details,
                                             note=note))


def show_intervals(engine, reporter: devices.Reporter, count: int | None, args, out,
                   style) -> int:
    """Rows until COUNT, the end of a recording, or Ctrl+C; then the one-line summary."""
    wall0, t0 = engine.wall_origin, engine.clock.monotonic()
    limits = headroom_for(args, engine) if hasattr(args, "source") else Headroom()
    engine.set_instance_type(limits.instance_type)
    engine.set_limits(limits.limits_of)
    seen: list[Interval] = []
    steps = 0
    try:
        while count is None or steps < count:
            try:
                result = devices.next_tick(engine, reporter)
            except SourceEnded:
                break
            steps += 1
            ticks = [iv for iv in result.intervals if not _hidden(iv, args)]
            seen.extend(result.intervals)
            if args.json:
                for iv in ticks:
                    write_json(interval_record(iv, wall0, t0), out)
            else:
                out.write(view.render_tick(ticks, wall0, style, details=args.details,
                                           notes=limits.lines(ticks)))
            out.flush()
    except KeyboardInterrupt:
        pass
    except DeviceError:
        _summarize(seen, wall0, args, out)  # what was seen still counts; then the error
        raise
    _summarize(seen, wall0, args, out)
    return EXIT_USAGE if reporter.failed else 0


def _hidden(iv: Interval, args) -> bool:
    """-z: an idle device's row is left out (no IO and no limit exceeded)."""
    return bool(getattr(args, "skip_idle", False)) and not (
        iv.op("read").ops or iv.op("write").ops or iv.throttled())


def _summarize(seen: list[Interval], wall0: float, args, out) -> None:
    summary = view.render_summary(seen, wall0)
    if args.json:
        print(summary, file=sys.stderr)
    else:
        out.write(summary + "\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    args.devices, interval, count = split_operands(args.operands)
    engine = devices.open_engine(args, interval or 1.0)
    reporter = devices.Reporter()
    out, style = sys.stdout, view.terminal_style(sys.stdout)
    try:
        try:
            first = devices.first_tick(engine, reporter)
        except SourceEnded:
            raise ConfigError("the recording has no pages") from None
        if interval is None:
            show_cumulative(first.baselines, args, out, style)
            return EXIT_USAGE if reporter.failed else 0
        return show_intervals(engine, reporter, count, args, out, style)
    finally:
        engine.close()
