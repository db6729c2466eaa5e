"""`nitrometer list`: the NVMe devices found, what they are, and whether their page reads."""

from __future__ import annotations

import argparse
import json
import sys

from nitrometer.collectors.base import KIND_OTHER, Device, FastClock, parse_source
from nitrometer.collectors.discovery import Discovery
from nitrometer.collectors.ioctl_source import IoctlSource
from nitrometer.errors import DeviceError
from nitrometer.sampling.sources import open_sources

COLUMNS = ("DEVICE", "KIND", "VOLUME/SERIAL", "BDEV", "MODEL", "READABLE")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-j", "--json", action="store_true", help="one JSON array of devices")
    parser.add_argument("--source", default="ioctl", metavar="SPEC",
                        help="ioctl (default), nvme-cli, replay:FILE or "
                        "simulate:TYPE[:SCENARIO[:EBS,...]]")
    parser.add_argument("--path.sysfs", dest="sysfs", default="/sys", metavar="DIR",
                        help="sysfs mount point (default: /sys)")
    parser.add_argument("--path.dev", dest="dev", default="/dev", metavar="DIR",
                        help="where device nodes live (default: /dev)")


def probe(device: Device, source=None) -> tuple[bool, str, str]:
    """(readable, why not, reason label) after one real read of the page."""
    if device.kind == KIND_OTHER:
        return False, "not an Amazon NVMe device: skipped", "not_ec2"
    try:
        if source is not None:
            source.read()
        else:
            with IoctlSource(device) as ioctl:
                ioctl.read()
    except DeviceError as exc:
        return False, str(exc), getattr(exc, "reason", "") or "other"
    return True, "", ""


def describe(device: Device, source=None) -> dict:
    readable, error, reason = probe(device, source)
    return {
        "device": device.name,
        "path": device.path,
        "controller": device.controller,
        "kind": device.kind,
        "serial": device.serial,
        "bdev": device.bdev,
        "model": device.model,
        "firmware": device.firmware,
        "nsid": device.nsid,
        "readable": readable,
        "error": error or None,
        "reason": reason or None,
    }


def _table(rows: list[dict]) -> str:
    cells = [COLUMNS] + [
        (r["device"], r["kind"], r["serial"] or "-", r["bdev"] or "-", r["model"] or "-",
         "yes" if r["readable"] else "no")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in cells]
    lines += [f"{r['device']}: {r['error']}" for r in rows if r["error"]]
    return "\n".join(lines) + "\n"


def _rows(args: argparse.Namespace) -> list[dict]:
    spec = parse_source(args.source)
    if spec.kind == "ioctl":
        return [describe(d) for d in Discovery(args.sysfs, args.dev).scan().devices]
    # nvme-cli, a recording or a simulation: its devices, each read once through it.
    sources = open_sources(spec, sysfs_root=args.sysfs, dev_root=args.dev, clock=FastClock(0))
    try:
        return [describe(s.device, s) for s in sources]
    finally:
        for source in sources:
            source.close()


def run(args: argparse.Namespace) -> int:
    rows = _rows(args)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif rows:
        sys.stdout.write(_table(rows))
    else:
        print(f"no NVMe devices under {args.sysfs}/class/nvme")
    return 0
