"""`nitrometer replay FILE [DEVICE...] [INTERVAL [COUNT]]`: a recording, as snapshot shows it.

Without INTERVAL it shows what happened over the whole recording (first page to last) in
the cumulative layout; with INTERVAL, the interval rows. Plays as fast as possible unless
--speed says otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

from nitrometer import native
from nitrometer.commands import sampling, snapshot, view
from nitrometer.commands.sampling import QUANTILES
from nitrometer.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a recording made with `nitrometer record`")
    snapshot.add_view_options(parser)
    parser.add_argument("--speed", type=float, default=0.0, metavar="X",
                        help="X times the recorded pace; 0 = as fast as possible (default)")


def whole_recording(sampler: sampling.Sampler, first) -> list[tuple[object, native.Page, str]]:
    """Each device's delta from its first page to its last, with a note on the span."""
    last = {id(d): (p, 0.0) for d, p in first}
    while True:
        try:
            for iv in sampler.step():
                last[id(iv.device)] = (iv.page, iv.end)
        except sampling.SourceEnded:
            break
    out = []
    for device, page in first:
        end_page, span = last[id(device)]
        summary = native.summarize(page, end_page, QUANTILES)
        note = f"over the recording: {span:.1f} s from its first page to its last"
        if summary.reset:
            note += " (the device restarted its counters: totals since the restart)"
        out.append((device, summary, note, span))
    return out


def run(args: argparse.Namespace) -> int:
    args.source = f"replay:{args.file}"
    args.path_sysfs, args.path_dev = "/sys", "/dev"
    args.devices, interval, count = snapshot.split_operands(args.operands)
    sampler = sampling.open_sampler(args, interval or 1.0)
    out, style = sys.stdout, view.terminal_style(sys.stdout)
    try:
        try:
            first = sampler.first()
        except sampling.SourceEnded:
            raise ConfigError(f"{args.file}: the recording has no pages") from None
        if interval is not None:
            return snapshot.show_intervals(sampler, count, args, out, style)
        for i, (device, summary, note, span) in enumerate(whole_recording(sampler, first)):
            if args.json:
                record = snapshot.cumulative_record(device, summary.delta, time.time(),
                                                    view_name="recording", seconds=span)
                snapshot.write_json(record, out)
                continue
            if i:
                out.write("\n")
            out.write(view.render_cumulative(device, summary.delta, style,
                                             details=args.details, note=note))
        return 0
    finally:
        sampler.close()
