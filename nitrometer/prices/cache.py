"""The local price cache: one CSV of rates and one JSON of provenance per region.

Standard library only: the agent reads it for its price metrics without pandas. Files are
written whole to a temporary name and renamed, so a reader never sees half a region.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nitrometer.errors import NitrometerError

RATE_COLUMNS = ("instance_type", "operation", "tenancy", "term", "offering", "lease",
                "payment", "usd_per_hour")
ON_DEMAND, RESERVED, SAVINGS_PLAN = "OnDemand", "Reserved", "SavingsPlan"
COMPUTE_SP, INSTANCE_SP = "ComputeSavingsPlans", "EC2InstanceSavingsPlans"
UPDATE_COMMAND = "nitrometer prices update --region {region}"


def default_cache_dir() -> Path:
    """$NITROMETER_CACHE_DIR; under systemd $STATE_DIRECTORY; else $XDG_CACHE_HOME/nitrometer."""
    if os.environ.get("NITROMETER_CACHE_DIR"):
        return Path(os.environ["NITROMETER_CACHE_DIR"])
    if os.environ.get("STATE_DIRECTORY"):
        # systemd may list several directories, separated by colons: the first is ours
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nitrometer"


def prices_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir if cache_dir else default_cache_dir()) / "prices"


@dataclass(frozen=True)
class RateKey:
    """What a rate is for. On-demand has no offering, lease or payment."""

    instance_type: str
    operation: str = "RunInstances"
    term: str = ON_DEMAND
    offering: str = ""  # standard | convertible | ComputeSavingsPlans | EC2InstanceSavingsPlans
    lease: str = ""  # 1yr | 3yr
    payment: str = ""  # No Upfront | Partial Upfront | All Upfront
    tenancy: str = "Shared"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_region(cache_dir: str | Path | None, region: str, rates: dict[RateKey, float],
                 meta: dict) -> Path:
    """The region's rates, then its provenance (a region counts as cached once both exist)."""
    directory = prices_dir(cache_dir)

    def rows(f):
        writer = csv.writer(f)
        writer.writerow(RATE_COLUMNS)
        for key in sorted(rates, key=lambda k: (k.instance_type, k.operation, k.term, k.offering,
                                                 k.lease, k.payment, k.tenancy)):
            writer.writerow([key.instance_type, key.operation, key.tenancy, key.term,
                             key.offering, key.lease, key.payment, repr(rates[key])])

    path = directory / f"{region}.csv"
    _atomic_write(path, rows)
    _atomic_write(directory / f"{region}.json",
                  lambda f: json.dump({**meta, "region": region, "rates": len(rates)}, f,
                                      indent=2))
    return path


@dataclass
class CachedRegion:
    region: str
    rates: dict[RateKey, float]
    meta: dict

    @property
    def as_of(self) -> str:
        return str(self.meta.get("ec2", {}).get("publication_date", ""))[:10]

    @property
    def source(self) -> str:
        return str(self.meta.get("base_url", "AWS Price List bulk API"))


def load_region(cache_dir: str | Path | None, region: str) -> CachedRegion | None:
    """The cached region, None when it was never updated; a damaged file is an error."""
    directory = prices_dir(cache_dir)
    rates_path, meta_path = directory / f"{region}.csv", directory / f"{region}.json"
    if not (rates_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        rates = {}
        with open(rates_path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                key = RateKey(row["instance_type"], row["operation"], row["term"],
                              row["offering"], row["lease"], row["payment"], row["tenancy"])
                rates[key] = float(row["usd_per_hour"])
    except (OSError, ValueError, KeyError) as exc:
        raise NitrometerError(f"price cache {rates_path} is damaged ({exc}); run "
                              f"{UPDATE_COMMAND.format(region=region)}") from None
    return CachedRegion(region, rates, meta)


def cached_regions(cache_dir: str | Path | None) -> list[str]:
    directory = prices_dir(cache_dir)
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.json") if (p.with_suffix(".csv")).is_file())
