"""`nitrometer decode FILE`: a raw page a user dumped with nvme get-log, made readable."""

from __future__ import annotations

import argparse
import json
import sys

from nitrometer import native
from nitrometer.collectors.nvme_cli_format import render_text
from nitrometer.errors import NitrometerError
from nitrometer.samples import SAMPLES, read_sample


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?",
                        help="raw page, e.g. from `nvme get-log DEV --log-id=0xd0 "
                        "--log-len=8192 --raw-binary`; - reads stdin")
    parser.add_argument("--sample", metavar="NAME",
                        help="decode a page shipped with nitrometer instead of FILE: "
                             + ", ".join(f"{k} ({v})" for k, v in SAMPLES.items()))
    parser.add_argument("-j", "--json", action="store_true",
                        help="JSON with nvme-cli's keys, plus kind, version and io_size_histograms")


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise NitrometerError(f"cannot read {path}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.sample is None):
        raise NitrometerError("decode: give either FILE or --sample NAME")
    data = read_sample(args.sample) if args.sample else read_input(args.file)
    try:
        page = native.decode(data)
    except native.PageError as exc:
        raise NitrometerError(f"{args.file}: {exc}") from None
    if args.json:
        json.dump(page.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(page))
    return 0
