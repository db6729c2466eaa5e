"""`nitrometer list`: the NVMe devices found, what they are, and whether their page reads."""

from __future__ import annotations

import argparse
import json
import sys

from nitrometer.collectors.base import KIND_OTHER, Device
from nitrometer.collectors.discovery import Discovery
from nitrometer.collectors.ioctl_source import DeviceReadError, IoctlSource

COLUMNS = ("DEVICE", "KIND", "VOLUME/SERIAL", "BDEV", "MODEL", "READABLE")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-j", "--json", action="store_true", help="one JSON array of devices")
    parser.add_argument("--path.sysfs", dest="sysfs", default="/sys", metavar="DIR",
                        help="sysfs mount point (default: /sys)")
    parser.add_argument("--path.dev", dest="dev", default="/dev", metavar="DIR",
                        help="where device nodes live (default: /dev)")


def probe(device: Device) -> tuple[bool, str, str]:
    """(readable, why not, reason label) after one real read of the page."""
    if device.kind == KIND_OTHER:
        return False, "not an Amazon NVMe device: skipped", "not_ec2"
    try:
        with IoctlSource(device) as source:
            source.read()
    except DeviceReadError as exc:
        return False, str(exc), exc.reason
    return True, "", ""


def describe(device: Device) -> dict:
    readable, error, reason = probe(device)
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


def run(args: argparse.Namespace) -> int:
    discovery = Discovery(args.sysfs, args.dev)
    rows = [describe(d) for d in discovery.scan().devices]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif rows:
        sys.stdout.write(_table(rows))
    else:
        print(f"no NVMe devices under {discovery.class_dir}")
    return 0
