"""One instance's price context for the agent: its on-demand rate, its Graviton equivalent
and that one's rate, its normalization factor and architecture.

Reads only what concerns that type: its rows of the packaged tables (a few hundred lines,
read once through) and two rates from the region's price cache, so the agent's memory does
not depend on the size of the cache. The mapping is the savings model's default ("latest")
column; the savings model keeps the full tables (nitrometer.savings.reference).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from nitrometer.ec2 import looks_graviton, size_factor, split_instance_type
from nitrometer.prices.cache import ON_DEMAND, RateKey
from nitrometer.prices.lookup import LINUX, PACKAGED_PRICES, open_region

MAPPING_FILE = PACKAGED_PRICES.parent / "graviton_equivalents_by_generation.csv"
LATEST = "default_graviton(latest_arm)"


@dataclass(frozen=True)
class Specs:
    known: bool  # in the packaged specs, or a mapped family with a size EC2 uses
    arch: str  # arm64 | x86_64 | "" (unknown type)
    normalization_factor: float | None


@dataclass(frozen=True)
class InstancePricing:
    price: float | None
    source: str
    specs: Specs
    graviton_type: str | None
    graviton_price: float | None


def _rows(path: Path, column: str, values: set[str]) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.DictReader(f) if row[column] in values]


def _float(text: str) -> float | None:
    return float(text) if text and text.strip() else None


def _graviton_family(family: str) -> str:
    rows = _rows(MAPPING_FILE, "x86_family", {family})
    return rows[0][LATEST].strip() if rows else ""


def instance_specs(instance_type: str) -> Specs:
    """Architecture and normalization factor from the packaged specs, else from the name."""
    family, size = split_instance_type(instance_type)
    rows = _rows(PACKAGED_PRICES, "family", {family})
    own = next((r for r in rows if r["instance_type"] == instance_type), None)
    factor = _float(own["normalization_factor"]) if own else None
    if factor is None:
        factor = size_factor(size)
    if factor is None and size == "metal":
        # bare metal has the factor of the family's largest virtualized size (same vCPUs)
        sized = [r for r in rows if not r["size"].startswith("metal")
                 and _float(r["normalization_factor"]) is not None]
        same = [r for r in sized if own and r["vcpu"] == own["vcpu"]]
        factor = max((_float(r["normalization_factor"]) for r in same or sized), default=None)
    known = own is not None or (bool(_graviton_family(family))
                                and (size_factor(size) is not None or size == "metal"))
    arch = (own["arch"] if own and own["arch"] else
            ("arm64" if looks_graviton(family) else "x86_64")) if known else ""
    return Specs(known, arch, factor)


def instance_pricing(instance_type: str, region: str, cache_dir: str | Path | None = None,
                     warn=None) -> InstancePricing:
    """The region's cache answers alone when there is one; else the packaged snapshot. A
    damaged cache goes to warn and the snapshot serves."""
    family, size = split_instance_type(instance_type)
    specs = instance_specs(instance_type)
    if looks_graviton(family):  # already on Graviton: its equivalent is itself
        target = instance_type
    else:
        target_family = _graviton_family(family)
        target = f"{target_family}.{size}" if target_family else None
    cached = open_region(cache_dir, region, warn)
    if cached is not None:
        try:
            price = cached.rate(RateKey(instance_type, LINUX, ON_DEMAND))
            target_price = cached.rate(RateKey(target, LINUX, ON_DEMAND)) if target else None
            exists = target is not None and cached.has_type(target)
            source = f"AWS Price List bulk API ({cached.source}), as of {cached.as_of}"
        finally:
            cached.close()
    else:
        wanted = {instance_type} | ({target} if target else set())
        prices = {r["instance_type"]: _float(r["ondemand_usd_per_hour"])
                  for r in _rows(PACKAGED_PRICES, "instance_type", wanted)
                  if r["region"] == region}
        price, target_price = prices.get(instance_type), prices.get(target)
        exists = False
        source = "packaged snapshot" if prices else "none"
    if target and not exists and target_price is None and \
            not _rows(PACKAGED_PRICES, "instance_type", {target}):
        target = None  # the mapped family has no such size
    return InstancePricing(price, source, specs, target, target_price if target else None)
