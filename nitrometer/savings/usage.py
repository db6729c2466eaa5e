"""The normalised usage table every input becomes, and the plain what-if CSV input.

One row per (month, region, instance type, category, operation, lease, payment, offering).
category is what the bill says about how the hours were bought: usage (on-demand),
compute_sp (Compute Savings Plan covered), windows, spot, ri (Reserved Instance covered) or
instance_sp (EC2 Instance Savings Plan covered); unused_sp is the Savings Plan commitment left
unused (no instance type, no hours); invalid counts lines whose usage or cost is no finite,
non-negative number. operation is the bill's (RunInstances:0010 is RHEL, ...); lease,
payment and offering say what term was bought (1yr, Partial Upfront, standard or
ComputeSavingsPlans...). cost is NaN when the input has no cost (the model then prices the
hours at the on-demand rate); unused_fees is the part of cost that is unused RI fees or
Savings Plan commitment.
"""

from __future__ import annotations

import csv
import math
import os
import stat
from pathlib import Path

import pandas as pd

from nitrometer.errors import NitrometerError

USAGE_COLUMNS = {
    "month": "object", "region": "object", "instance_type": "object", "category": "object",
    "operation": "object", "lease": "object", "payment": "object", "offering": "object",
    "hours": "float64", "nih": "float64", "hours_without_nf": "float64", "cost": "float64",
    "unused_fees": "float64", "lines": "int64", "source": "object",
}
CATEGORIES = ("usage", "compute_sp", "windows", "spot", "ri", "instance_sp", "unused_sp",
              "invalid")
LINUX = "RunInstances"
_NOT_FILES = {stat.S_ISDIR: "a directory", stat.S_ISCHR: "a character device",
              stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a named pipe",
              stat.S_ISSOCK: "a socket"}


def check_input_file(path: Path) -> None:
    """An input file must be a regular, readable, non-empty file: say which it is not."""
    try:
        mode = path.stat()
    except FileNotFoundError:
        raise NitrometerError(f"cannot read {path}: no such file or directory") from None
    except OSError as exc:
        raise NitrometerError(f"cannot read {path}: {exc.strerror}") from None
    for test, kind in _NOT_FILES.items():
        if test(mode.st_mode):
            raise NitrometerError(f"{path} is {kind}, not a file to read")
    if mode.st_size == 0:
        raise NitrometerError(f"{path} is empty: it needs at least a header line")
    if not os.access(path, os.R_OK):
        raise NitrometerError(f"cannot read {path}: permission denied")


def usage_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(USAGE_COLUMNS))
    frame["unused_fees"] = frame["unused_fees"].fillna(0.0)  # only bills have fees
    # what-ifs and the fleet: Linux on demand
    for column, default in (("operation", LINUX), ("lease", ""), ("payment", ""),
                            ("offering", "")):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), default)
    return frame.astype(USAGE_COLUMNS)


def _number(text: str) -> float | None:
    """A finite, non-negative number; None for anything else."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def read_usage_csv(path: str | Path, default_region: str) -> pd.DataFrame:
    """instance_type, hours[, region][, cost]: a quick what-if without a bill."""
    check_input_file(Path(path))
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [name.strip().lower() for name in reader.fieldnames or []]
            raw_rows = list(reader)
    except OSError as exc:
        raise NitrometerError(f"cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise NitrometerError(f"{path} is not a CSV usage table: {exc}") from None
    for required in ("instance_type", "hours"):
        if required not in fields:
            raise NitrometerError(f"{path}: missing required column {required} "
                                  "(a usage table has instance_type, hours[, region])")
    rows = []
    for raw in raw_rows:
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        instance_type = row["instance_type"].lower()
        region = row.get("region") or default_region
        hours = _number(row["hours"])
        cost = _number(row["cost"]) if row.get("cost") else float("nan")  # blank: on demand
        if hours is None or cost is None:
            # like a bill's line: counted as invalid, the rest goes on
            rows.append({"month": "", "region": region, "instance_type": instance_type,
                         "category": "invalid", "hours": 0.0, "nih": 0.0,
                         "hours_without_nf": 0.0, "cost": 0.0, "lines": 1,
                         "source": "usage-csv"})
            continue
        rows.append({"month": "", "region": region,
                     "instance_type": instance_type, "category": "usage", "hours": hours,
                     "nih": 0.0, "hours_without_nf": hours, "cost": cost, "lines": 1,
                     "source": "usage-csv"})
    if not rows:
        raise NitrometerError(f"{path}: no usage rows")
    return usage_frame(rows)
