"""EC2 facts shared by the agent, the simulator and the savings model: instance-type names
and the storage limits table (nitrometer/data/storage_limits.csv, sources cited per row)."""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from nitrometer.errors import ConfigError

MIB = 1 << 20  # EBS throughput is provisioned and reported in MiB/s; limits are bytes/s
# What no NVMe device does in a second, per direction, where no limit is known: over 20 times
# the fastest published per-device figure, and far below what a corrupted counter shows.
CEILING_OPS_PER_S = 1e7
CEILING_BYTES_PER_S = 2e10
# Above a published limit a device may still show more in one read: its page can hold two
# refreshes' worth, and EC2 holds the instance to the limit, not each second to the IO.
BOUND_MARGIN = 4.0
# The names a machine's architecture goes by, and the one label nitrometer uses for each.
ARCH_LABELS = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}

# The EC2 guide gives no instance-store throughput; where the table has none, a device is
# taken to move its write IOPS limit at 16 KiB each.
INSTANCE_STORE_TP_BYTES_PER_IOP = 16384
LIMITS_FILE = Path(__file__).resolve().parent / "data" / "storage_limits.csv"
PRICES_FILE = LIMITS_FILE.parent / "ec2_prices.csv"

# EC2 User Guide: instance size flexibility by normalization factor.
SIZE_FACTORS = {"nano": 0.25, "micro": 0.5, "small": 1.0, "medium": 2.0, "large": 4.0,
                "xlarge": 8.0}
_MULTI_XLARGE = re.compile(r"^(\d+)xlarge$")
_METAL_XL = re.compile(r"^metal-(\d+)xl$")
_FAMILY_SUFFIX = re.compile(r"^[a-z-]*?\d+(.*)$")


def size_factor(size: str) -> float | None:
    """Normalization factor a size name implies, per the EC2 docs; None for plain 'metal'."""
    if size in SIZE_FACTORS:
        return SIZE_FACTORS[size]
    match = _MULTI_XLARGE.match(size) or _METAL_XL.match(size)
    return 8.0 * int(match.group(1)) if match else None


def arch_label(machine: str | None) -> str:
    """arm64 or x86_64 for any name of the two (uname, IMDS, the price list); "" otherwise."""
    return ARCH_LABELS.get((machine or "").lower(), "")


def looks_graviton(family: str) -> bool:
    """Graviton families carry a 'g' after the generation digit (m6g, c7gn, im4gn, x2gd)."""
    match = _FAMILY_SUFFIX.match(family)
    return bool(match) and "g" in match.group(1)


def split_instance_type(instance_type: str) -> tuple[str, str]:
    """'m7g.large' -> ('m7g', 'large'); ('', '') for an empty name."""
    family, _, size = instance_type.strip().lower().partition(".")
    return family, size


def parse_instance_type(instance_type: str) -> tuple[str, str]:
    """Like split_instance_type, but a name that is not family.size is a ConfigError."""
    family, size = split_instance_type(instance_type)
    if not family or not size:
        raise ConfigError(f"not an EC2 instance type: {instance_type!r}")
    return family, size


def known_instance_types() -> set[str]:
    """Every instance type the packaged limits and price tables name."""
    with open(PRICES_FILE, newline="", encoding="utf-8") as f:
        priced = {row["instance_type"] for row in csv.DictReader(f)}
    return priced | {name for scope, name in limits_table() if scope != "ebs_volume"}


def is_known_instance_type(name: str) -> bool:
    """known_instance_types() has it: read through, nothing kept (the agent asks once)."""
    with open(PRICES_FILE, newline="", encoding="utf-8") as f:
        if any(row["instance_type"] == name for row in csv.DictReader(f)):
            return True
    return any(_row(scope, name) for scope in ("instance_store", "ebs_instance"))


def check_instance_type(instance_type: str, what: str = "--instance.type") -> str:
    """The name lower-cased; one that neither table knows is a ConfigError naming the
    closest known ones (a typo would otherwise leave every limit out without a word)."""
    name = instance_type.strip().lower()
    if is_known_instance_type(name):
        return name
    import difflib

    known = known_instance_types()
    closest = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    hint = f"closest: {', '.join(closest)}" if closest else \
        f"known families: {', '.join(sorted({t.split('.')[0] for t in known})[:12])}, ..."
    raise ConfigError(f"{what} {instance_type}: not an instance type nitrometer knows ({hint})")


@dataclass(frozen=True)
class Limits:
    read_iops: float
    write_iops: float
    throughput: float  # bytes/s
    source: str = ""


@dataclass(frozen=True)
class VolumeLimits:
    """What an EBS volume is provisioned for."""

    volume_type: str
    iops: float | None  # provisioned (io1/io2/gp3) or baseline (gp2) IOPS
    throughput: float | None  # bytes/s
    source: str  # config | ec2_api | simulated


def _load_table() -> dict[tuple[str, str], dict]:
    with open(LIMITS_FILE, newline="", encoding="utf-8") as f:
        return {(row["scope"], row["name"]): row for row in csv.DictReader(f)}


_TABLE: dict[tuple[str, str], dict] | None = None


def limits_table() -> dict[tuple[str, str], dict]:
    """(scope, name) -> row; scopes: instance_store, ebs_instance, ebs_volume."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _load_table()
    return _TABLE


@functools.cache
def _row(scope: str, name: str) -> dict | None:
    """One row of the table, read through the file: an agent needs a row or two, so it
    keeps those rather than the whole table."""
    if _TABLE is not None:
        return _TABLE.get((scope, name))
    with open(LIMITS_FILE, newline="", encoding="utf-8") as f:
        return next((row for row in csv.DictReader(f)
                     if row["scope"] == scope and row["name"] == name), None)


def _limits(row: dict) -> Limits:
    write = float(row["write_iops"])
    tp = row["throughput_mb_s"]
    throughput = float(tp) * 1e6 if tp else write * INSTANCE_STORE_TP_BYTES_PER_IOP
    return Limits(float(row["read_iops"]), write, throughput, row["source"])


def instance_store_types() -> list:
    return [name for scope, name in limits_table() if scope == "instance_store"]


def instance_store_limits(instance_type: str) -> tuple[int, Limits] | None:
    """(number of instance-store volumes, their aggregate limits), None when not in the table."""
    row = _row("instance_store", instance_type)
    return None if row is None else (int(row["devices"]), _limits(row))


def ebs_instance_limits(instance_type: str) -> Limits | None:
    row = _row("ebs_instance", instance_type)
    return _limits(row) if row else None


def ebs_volume_limits(volume_type: str) -> Limits | None:
    row = _row("ebs_volume", volume_type)
    return _limits(row) if row else None


def published_limits(scope: str, name: str) -> dict[str, float]:
    """The limits the table gives for a row, without derived ones: read_iops, write_iops and
    throughput (bytes/s) where published. Empty when the row is unknown."""
    row = _row(scope, name)
    if row is None:
        return {}
    out = {key: float(row[key]) for key in ("read_iops", "write_iops") if row[key]}
    if row["throughput_mb_s"]:
        out["throughput"] = float(row["throughput_mb_s"]) * 1e6
    return out


def storage_limits(instance_type: str) -> dict:
    """The instance's published storage limits by (kind, op): instance store per op (the
    guide's 100 % read and 100 % write figures for all its volumes), EBS for the instance
    as a whole (op "total")."""
    out = {}
    store = published_limits("instance_store", instance_type)
    for op in ("read", "write"):
        if f"{op}_iops" in store:
            out[("instance_store", op)] = {"iops": store[f"{op}_iops"]}
    if "throughput" in store:
        out[("instance_store", "total")] = {"throughput": store["throughput"]}
    ebs = published_limits("ebs_instance", instance_type)
    if ebs:
        total = {"iops": ebs.get("read_iops")}
        if "throughput" in ebs:
            total["throughput"] = ebs["throughput"]
        out[("ebs", "total")] = {k: v for k, v in total.items() if v}
    return out


def device_bounds(kind: str, instance_type: str | None) -> tuple[float, float]:
    """(ops, bytes) a second that a device of this kind on this instance type cannot pass,
    from the published limits (instance store: the instance's own; EBS: the instance's EBS
    limit, which caps every volume), with a margin; the ceilings where none is published."""
    scope = {"instance_store": "instance_store", "ebs": "ebs_instance"}.get(kind)
    published = published_limits(scope, instance_type) if scope and instance_type else {}
    iops = max(published.get("read_iops", 0.0), published.get("write_iops", 0.0))
    throughput = published.get("throughput")
    return (min(iops * BOUND_MARGIN, CEILING_OPS_PER_S) if iops else CEILING_OPS_PER_S,
            min(throughput * BOUND_MARGIN, CEILING_BYTES_PER_S) if throughput
            else CEILING_BYTES_PER_S)
