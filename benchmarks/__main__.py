"""`python -m benchmarks [--quick] [--only NAME ...] [--out FILE]`: run, then write the report."""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import ROOT, Context, Section, git_revision, machine

# Run order: the cheap in-process ones first, the agent runs, the savings model last.
# One module a line.
MODULES = (
    "core",
    "poll",
    "workload",
    "accuracy",
    "agent",
    "node_exporter",
    "scrape",
    "jitter",
    "hostile",
    "install",
    "savings",
    "prices",
    "imports",
)
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "nitrometer-bench-cache"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a short smoke run: fewer rounds, shorter runs, small inputs")
    parser.add_argument("--only", action="append", metavar="NAME", default=[],
                        help=f"run only these (repeatable or comma separated): "
                             f"{', '.join(MODULES)}")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"),
                        help="report file (default BENCHMARKS.md at the repository root)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE),
                        help="where generated inputs (CUR files) are kept between runs")
    args = parser.parse_args(argv)
    only = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in only if n not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(MODULES)})")
    args.names = [n for n in MODULES if not only or n in only]
    return args


def section_number(section: Section) -> int:
    """The number a section's title starts with ("4. Scrape ..."): the report's order."""
    head = section.title.split(".", 1)[0]
    return int(head) if head.isdigit() else 1 << 30


def render(sections: list[Section], command: str, quick: bool, started: str,
           seconds: float, host: list[tuple[str, str]], revision: str) -> str:
    sections = sorted(sections, key=section_number)  # run order is cost order, not this
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {started} (revision {revision}), "
        f"in {seconds / 60:.1f} minutes." + (" A --quick smoke run: the figures are rough."
                                             if quick else ""),
        "The machine is shared with other work, so every comparison runs side by side in "
        "one run, interleaved, and is given as a ratio of medians over repeated rounds. Every "
        "figure below was measured by this run, and each says how many samples it rests "
        "on; a target with too few samples to judge says so instead of a verdict. No test "
        "asserts any of these figures.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in host],
        "",
        "## Targets",
        "",
        "| measurement | target | measured | samples | met |",
        "|---|---|---|---|---|",
    ]
    verdicts = {True: "yes", False: "**no**", None: "not judged"}
    for section in sections:
        for t in section.targets:
            lines.append(f"| {t.what} | {t.goal} | {t.measured} | {t.samples} | "
                         f"{verdicts[t.met]} |")
    lines.append("")
    for section in sections:
        lines.append(section.markdown())
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = " ".join(["python -m benchmarks", *argv]) if argv else "make bench"
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    revision = git_revision()  # the code that runs, whatever is committed meanwhile
    t0 = time.monotonic()
    sections: list[Section] = []
    failed = 0
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nitrometer-bench-") as work:

        def log(message: str) -> None:
            print(f"[{time.monotonic() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

        ctx = Context(quick=args.quick, workdir=Path(work), cache=cache, log=log)
        for name in args.names:
            module = importlib.import_module(f"benchmarks.{name}")
            log(f"{name}: {module.TITLE}")
            try:
                sections.append(module.run(ctx))
            except Exception as exc:  # one broken measurement must not lose the others
                failed += 1
                traceback.print_exc()
                section = Section(module.TITLE)
                section.add(f"Not measured: {type(exc).__name__}: {exc}", "")
                sections.append(section)
    out = Path(args.out)
    out.write_text(render(sections, command, args.quick, started, time.monotonic() - t0, host,
                          revision))
    print(f"wrote {out} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
