"""`nitrometer decode FILE`: a raw page a user dumped with nvme get-log, made readable.

The text is what nvme-cli 3.0's `nvme amzn stats [-d]` prints for the same page, byte for
byte (2.16 prints the same text).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys

from nitrometer import native
from nitrometer.collectors.recording import MAGIC as RECORDING_MAGIC
from nitrometer.commands.nvme_text import render_text
from nitrometer.errors import NitrometerError
from nitrometer.samples import SAMPLES, read_sample


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?",
                        help="raw page, e.g. from `nvme get-log DEV --log-id=0xd0 "
                        "--log-len=8192 --raw-binary`; - reads stdin")
    parser.add_argument("-d", "--details", action="store_true",
                        help="also the IO-size histograms (version 1 pages), as nvme-cli's -d")
    parser.add_argument("--sample", metavar="NAME",
                        help="decode a page shipped with nitrometer instead of FILE: "
                             + ", ".join(f"{k} ({v})" for k, v in SAMPLES.items()))
    parser.add_argument("-j", "--json", action="store_true",
                        help="JSON with nvme-cli's keys, plus kind, version and "
                        "io_size_histograms (always included)")


MAX_PAGE = 8192  # the largest 0xD0 page (instance store); anything longer is not one


def read_input(path: str) -> bytes:
    """At most one page and a byte: a device or an endless stream is refused, never read."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_PAGE + 1)
        else:
            if _is_device(os.stat(path).st_mode):
                raise NitrometerError(f"{path} is a device, not a saved page: save it first "
                                      "with nvme get-log ... --raw-binary > FILE")
            with open(path, "rb") as f:
                if _is_device(os.fstat(f.fileno()).st_mode):
                    raise NitrometerError(f"{path} is a device, not a saved page")
                data = f.read(MAX_PAGE + 1)
    except OSError as exc:
        raise NitrometerError(f"cannot read {name}: {exc.strerror}") from None
    if len(data) > MAX_PAGE:
        raise NitrometerError(f"{name} is larger than a log page ({MAX_PAGE} bytes at most)")
    return data


def _is_device(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def run(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.sample is None):
        raise NitrometerError("decode: give either FILE or --sample NAME")
    data = read_sample(args.sample) if args.sample else read_input(args.file)
    try:
        page = native.decode(data)
    except native.PageError as exc:
        message = str(exc).split(" (originated from")[0]
        if data.startswith(RECORDING_MAGIC):
            message = ("a nitrometer recording, not a page: look at it with "
                       f"`nitrometer replay {args.file}`")
        raise NitrometerError(f"{args.file}: {message}") from None
    if args.json:
        json.dump(page.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(page, details=args.details))
    return 0
