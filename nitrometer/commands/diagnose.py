"""`nitrometer diagnose [DEVICE...] [--duration 40s]`: sample each second, then explain.

Exit status: 0 nothing wrong, 1 a problem found, 2 usage or device errors.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap

from nitrometer import native
from nitrometer.commands import sampling, view
from nitrometer.commands.findings import Finding, Window, analyze
from nitrometer.commands.sampling import QUANTILES, Interval
from nitrometer.commands.snapshot import _device_record
from nitrometer.errors import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, ConfigError

SCHEMA_ID = "nitrometer.diagnose/1"
WIDTH = 80
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise ConfigError(f"--duration {text!r}: expected seconds, e.g. 40s, 2m or 90")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    if seconds < 2:
        raise ConfigError(f"--duration {text!r}: at least 2 seconds")
    return seconds


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("devices", nargs="*", metavar="DEVICE",
                        help="devices (name, /dev path or serial; default: all)")
    parser.add_argument("--duration", default="40s", type=parse_duration,
                        help="how long to sample, one read per second (default 40s)")
    parser.add_argument("-j", "--json", action="store_true", help="one JSON object")
    sampling.add_source_options(parser)


def collect(sampler: sampling.Sampler, duration: float, progress=None) -> tuple[list, dict]:
    """Baseline pages and every device's intervals, until the duration, the end of a
    recording, or Ctrl+C (which diagnoses what was sampled so far)."""
    first = sampler.first()
    per_device: dict[int, list[Interval]] = {id(d): [] for d, _ in first}
    steps = max(1, round(duration))
    try:
        for step in range(steps):
            try:
                ticks = sampler.step()
            except sampling.SourceEnded:
                break
            for iv in ticks:
                per_device[id(iv.device)].append(iv)
            if progress:
                progress(step + 1, steps)
    except KeyboardInterrupt:
        pass
    return first, per_device


def windows(first, per_device) -> list[Window]:
    out = []
    for device, page in first:
        intervals = per_device[id(device)]
        last = intervals[-1].page if intervals else page
        out.append(Window(device, intervals, native.summarize(page, last, QUANTILES)))
    return out


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent)


def healthy_line(w: Window) -> str:
    queue = max((iv.queue_length for iv in w.intervals), default=0)
    return (f"nothing wrong: no limit exceeded, reads p99 {view.fmt_us(w.p99('read'))}, "
            f"writes p99 {view.fmt_us(w.p99('write'))}, queue length at most {queue}")


def render_text(results: list[tuple[Window, list[Finding]]], style: view.Style) -> str:
    seconds = max((w.seconds for w, _ in results), default=0.0)
    n = len(results)
    lines = [f"Sampled {n} device{'s' if n != 1 else ''} every second for {seconds:.0f} s.", ""]
    for w, found in results:
        lines.append(style.paint(view.device_title(w.device), "1"))
        if not w.intervals:
            lines += ["  no complete interval: nothing to judge", ""]
            continue
        if not found:
            lines += _wrap(style.paint("OK", "1", "32") + "  " + healthy_line(w), "  ") + [""]
            continue
        for f in found:
            lines.append("  " + style.alert("PROBLEM") + "  " + f.title)
            lines += _wrap(f.detail, "    ")
            lines += _wrap("What to do: " + f.advice, "    ")
            lines.append("")
    problems = sum(len(f) for _, f in results)
    bad = sum(1 for _, f in results if f)
    if problems:
        lines.append(f"Result: {problems} problem{'s' if problems != 1 else ''} on {bad} of "
                     f"{n} device{'s' if n != 1 else ''}.")
    else:
        lines.append("Result: nothing wrong found.")
    return "\n".join(lines) + "\n"


def report(results: list[tuple[Window, list[Finding]]]) -> dict:
    return {
        "schema": SCHEMA_ID,
        "healthy": not any(f for _, f in results),
        "window_s": round(max((w.seconds for w, _ in results), default=0.0), 3),
        "devices": [
            {"device": _device_record(w.device), "intervals": len(w.intervals),
             "healthy": not found, "findings": [f.to_dict() for f in found]}
            for w, found in results
        ],
    }


def _progress_printer(stream):
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        stream.write(f"\rsampling: {done}/{total} s{end}")
        stream.flush()
    return show


def run(args: argparse.Namespace) -> int:
    sampler = sampling.open_sampler(args, 1.0)
    try:
        try:
            first, per_device = collect(sampler, args.duration, _progress_printer(sys.stderr))
        except sampling.SourceEnded as exc:
            raise ConfigError(f"{exc}: the recording has no pages") from None
    finally:
        sampler.close()
    results = [(w, analyze(w)) for w in windows(first, per_device)]
    if args.json:
        sys.stdout.write(json.dumps(report(results)) + "\n")
    else:
        sys.stdout.write(render_text(results, view.terminal_style(sys.stdout)))
    if sampler.failed:
        return EXIT_USAGE  # a device failed during the window (said on stderr when it did)
    return EXIT_PROBLEM if any(f for _, f in results) else EXIT_OK
