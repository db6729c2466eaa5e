"""`nitrometer replay FILE [DEVICE...] [INTERVAL [COUNT]]`: a recording, as snapshot shows it.

Without INTERVAL it shows what happened over the whole recording (first page to last) in
the cumulative layout; with INTERVAL, the interval rows. Plays as fast as possible unless
--speed says otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

from nitrometer import devicecore, native
from nitrometer.commands import devices, snapshot, view
from nitrometer.errors import ConfigError
from nitrometer.sampling import SourceEnded
from nitrometer.sampling.device import key_of


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a recording made with `nitrometer record`")
    snapshot.add_view_options(parser)
    devices.add_source_options(parser, speed_default=0.0, source=False)


def whole_recording(engine, reporter, first) -> list[tuple[object, native.Page, str, float]]:
    """Each device's intervals added up over the recording, with a note on the span."""
    totals = {key_of(d): (d, devicecore.Totals(), [0.0]) for d, _page in first.baselines}
    baselines = {key_of(d): page for d, page in first.baselines}
    while True:
        try:
            result = devices.next_tick(engine, reporter)
        except SourceEnded:
            break
        for iv in result.intervals:
            device, total, span = totals.setdefault(key_of(iv.device),
                                                    (iv.device, devicecore.Totals(), [0.0]))
            total.add(iv.delta)
            span[0] += iv.seconds
    out = []
    for key, (device, total, span) in totals.items():
        tracker = engine.trackers.get(key)
        note = f"over the recording: {span[0]:.1f} s from its first page to its last"
        if tracker is not None and tracker.resets:
            note += (f" (the device restarted its counters {tracker.resets}x; counted "
                     "across the restarts)")
        if total.empty:  # one page only: nothing happened that the recording shows
            page = baselines[key]
            out.append((device, native.summarize(page, page).delta, note, 0.0))
            continue
        out.append((device, total.page, note, span[0]))
    return out


def run(args: argparse.Namespace) -> int:
    args.source = f"replay:{args.file}"
    args.devices, interval, count = snapshot.split_operands(args.operands)
    engine = devices.open_engine(args, interval or 1.0)
    reporter = devices.Reporter()
    out, style = sys.stdout, view.terminal_style(sys.stdout)
    try:
        try:
            first = devices.first_tick(engine, reporter)
        except SourceEnded:
            raise ConfigError(f"{args.file}: the recording has no pages") from None
        if interval is not None:
            return snapshot.show_intervals(engine, reporter, count, args, out, style)
        for i, (device, page, note, span) in enumerate(whole_recording(engine, reporter,
                                                                       first)):
            if args.json:
                record = snapshot.cumulative_record(device, page, time.time(),
                                                    view_name="recording", seconds=span)
                snapshot.write_json(record, out)
                continue
            if i:
                out.write("\n")
            out.write(view.render_cumulative(device, page, style, details=args.details,
                                             note=note))
        return 0
    finally:
        engine.close()
