"""`nitrometer decode FILE`: a raw page a user dumped with nvme get-log, made readable.

The text is what nvme-cli 3.0's `nvme amzn stats [-d]` prints for the same page, byte for
byte (2.16 prints the same text).
"""

from __future__ import annotations

import argparse
import json
import sys

from nitrometer import native
from nitrometer.collectors.nvme_cli_format import render_text
from nitrometer.errors import NitrometerError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="raw page, e.g. from `nvme get-log DEV --log-id=0xd0 "
                        "--log-len=8192 --raw-binary`; - reads stdin")
    parser.add_argument("-d", "--details", action="store_true",
                        help="also the IO-size histograms (version 1 pages), as nvme-cli's -d")
    parser.add_argument("-j", "--json", action="store_true",
                        help="JSON with nvme-cli's keys, plus kind, version and "
                        "io_size_histograms (always included)")


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise NitrometerError(f"cannot read {path}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    data = read_input(args.file)
    try:
        page = native.decode(data)
    except native.PageError as exc:
        raise NitrometerError(f"{args.file}: {exc}") from None
    if args.json:
        json.dump(page.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(page, details=args.details))
    return 0
