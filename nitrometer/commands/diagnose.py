"""`nitrometer diagnose [DEVICE...] [--duration 40s]`: sample each second, then explain.

Exit status: 0 nothing wrong, 1 a problem found, 2 usage or device errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from nitrometer.commands import devices, view
from nitrometer.commands.findings import Finding, Window, analyze
from nitrometer.commands.who import open_who, who_line, who_record
from nitrometer.errors import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, ConfigError
from nitrometer.sampling import SourceEnded
from nitrometer.sampling.device import key_of
from nitrometer.sampling.record_json import device_json as _device_record
from nitrometer.timefmt import parse_duration

SCHEMA_ID = "nitrometer.diagnose/1"
MAX_DURATION = 86400.0  # one interval a second, all kept in memory until the end
WIDTH = 80


def duration(text: str) -> float:
    return parse_duration(f"--duration {text}", text, minimum=2, maximum=MAX_DURATION)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("devices", nargs="*", metavar="DEVICE",
                        help="devices (name, /dev path or serial; default: all)")
    parser.add_argument("--duration", default="40s", type=duration,
                        help="how long to sample, one read per second, 2s to 1d (default 40s)")
    parser.add_argument("-j", "--json", action="store_true", help="one JSON object")
    devices.add_source_options(parser)
    parser.add_argument("--path.cgroupfs", dest="path_cgroupfs", default="/sys/fs/cgroup",
                        metavar="DIR", help="cgroup v2 mount point: with the io controller, "
                        "the workloads behind exceeded seconds are named (default "
                        "/sys/fs/cgroup)")


def collect(engine, reporter: devices.Reporter, duration: float,
            progress=None, on_tick=None) -> list[Window]:
    """Every device's intervals until the duration, the end of a recording, or Ctrl+C
    (which diagnoses what was sampled so far); on_tick(result) sees every tick."""
    first = devices.first_tick(engine, reporter)
    if on_tick is not None:
        on_tick(first)
    windows = {key_of(d): Window(d, []) for d, _page in first.baselines}
    steps = max(1, round(duration))
    try:
        for step in range(steps):
            try:
                result = devices.next_tick(engine, reporter)
            except SourceEnded:
                break
            if on_tick is not None:
                on_tick(result)
            for iv in result.intervals:
                key = key_of(iv.device)
                window = windows.get(key)
                if window is None:  # a device that came back after failing at first
                    window = windows[key] = Window(iv.device, [])
                window.intervals.append(iv)
            if progress:
                progress(step + 1, steps)
    except KeyboardInterrupt:
        pass
    return list(windows.values())


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent)


def healthy_line(w: Window) -> str:
    queue = max((iv.queue_length for iv in w.intervals), default=0)
    over = sum(iv.exceeded_us[key] for iv in w.intervals for key in iv.throttled())
    limits = "no limit exceeded" if not over else \
        f"limits exceeded for {over / 1e6:.3f} s in all (under 0.05 s: not a finding)"
    return (f"nothing wrong: {limits}, reads p99 {view.fmt_us(w.p99('read'))}, "
            f"writes p99 {view.fmt_us(w.p99('write'))}, queue length at most {queue}")


def render_text(results: list[tuple[Window, list[Finding]]], style: view.Style,
                who=None) -> str:
    seconds = max((w.seconds for w, _ in results), default=0.0)
    n = len(results)
    lines = [f"Sampled {n} device{'s' if n != 1 else ''} every second for {seconds:.0f} s.", ""]
    for w, found in results:
        lines.append(style.paint(view.device_title(w.device), "1"))
        if not w.intervals:
            lines += ["  no complete interval: nothing to judge", ""]
            continue
        shares = who.of(w.device) if who is not None else None
        if not found:
            lines += _wrap(style.paint("OK", "1", "32") + "  " + healthy_line(w), "  ")
            lines += (_wrap("Who: " + who_line(shares), "  ") if shares else []) + [""]
            continue
        for f in found:
            lines.append("  " + style.alert("PROBLEM") + "  " + f.title)
            lines += _wrap(f.detail, "    ")
            lines += _wrap("What to do: " + f.advice, "    ")
            lines.append("")
        if shares:
            lines += _wrap("Who: " + who_line(shares), "  ") + [""]
    problems = sum(len(f) for _, f in results)
    bad = sum(1 for _, f in results if f)
    if problems:
        lines.append(f"Result: {problems} problem{'s' if problems != 1 else ''} on {bad} of "
                     f"{n} device{'s' if n != 1 else ''}.")
    else:
        lines.append("Result: nothing wrong found.")
    return "\n".join(lines) + "\n"


def report(results: list[tuple[Window, list[Finding]]], who=None) -> dict:
    def workloads(w: Window) -> dict:
        shares = who.of(w.device) if who is not None else None
        return {"workloads": who_record(shares)} if shares else {}

    return {
        "schema": SCHEMA_ID,
        "healthy": not any(f for _, f in results),
        "window_s": round(max((w.seconds for w, _ in results), default=0.0), 3),
        "devices": [
            {"device": _device_record(w.device), "intervals": len(w.intervals),
             "healthy": not found, "findings": [f.to_dict() for f in found],
             **workloads(w)}
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
    who, wrap = open_who(args)
    engine = devices.open_engine(args, 1.0, wrap)
    reporter = devices.Reporter()
    try:
        try:
            windows = collect(engine, reporter, args.duration, _progress_printer(sys.stderr),
                              who.tick if who is not None else None)
        except SourceEnded as exc:
            raise ConfigError(f"{exc}") from None
    finally:
        engine.close()
    results = [(w, analyze(w)) for w in windows]
    if args.json:
        sys.stdout.write(json.dumps(report(results, who)) + "\n")
    else:
        sys.stdout.write(render_text(results, view.terminal_style(sys.stdout), who))
    if reporter.failed:
        return EXIT_USAGE  # a device failed during the window (said on stderr when it did)
    return EXIT_PROBLEM if any(f for _, f in results) else EXIT_OK
