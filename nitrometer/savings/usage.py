"""The normalised usage table every input becomes, and the plain what-if CSV input.

One row per (month, region, instance type, category). category is what the bill says about
how the hours were bought: usage (on-demand or Compute Savings Plan), windows, spot, ri
(Reserved Instance covered) or instance_sp (EC2 Instance Savings Plan covered); unused_sp is
the Savings Plan commitment left unused (no instance type, no hours). cost is NaN when the
input has no cost (the model then prices the hours at the on-demand rate); unused_fees is
the part of cost that is unused RI fees or Savings Plan commitment.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from nitrometer.ec2 import parse_instance_type
from nitrometer.errors import NitrometerError

USAGE_COLUMNS = {
    "month": "object", "region": "object", "instance_type": "object", "category": "object",
    "hours": "float64", "nih": "float64", "hours_without_nf": "float64", "cost": "float64",
    "unused_fees": "float64", "lines": "int64", "source": "object",
}
CATEGORIES = ("usage", "windows", "spot", "ri", "instance_sp", "unused_sp")


def usage_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(USAGE_COLUMNS))
    frame["unused_fees"] = frame["unused_fees"].fillna(0.0)  # only bills have fees
    return frame.astype(USAGE_COLUMNS)


def read_usage_csv(path: str | Path, default_region: str) -> pd.DataFrame:
    """instance_type, hours[, region][, cost]: a quick what-if without a bill."""
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
    for number, raw in enumerate(raw_rows, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        try:
            instance_type = row["instance_type"].lower()
            parse_instance_type(instance_type)
            hours = float(row["hours"])
            cost = float(row["cost"]) if row.get("cost") else float("nan")
        except (ValueError, NitrometerError):
            raise NitrometerError(f"{path}:{number}: bad row: instance_type "
                                  f"{row.get('instance_type')!r}, hours {row.get('hours')!r}"
                                  ) from None
        if hours < 0:
            raise NitrometerError(f"{path}:{number}: negative hours")
        rows.append({"month": "", "region": row.get("region") or default_region,
                     "instance_type": instance_type, "category": "usage", "hours": hours,
                     "nih": 0.0, "hours_without_nf": hours, "cost": cost, "lines": 1,
                     "source": "usage-csv"})
    if not rows:
        raise NitrometerError(f"{path}: no usage rows")
    return usage_frame(rows)
