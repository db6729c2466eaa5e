"""Packaged reference data: on-demand prices, normalization factors, x86 -> Graviton mapping.

Standard library only (csv), so the agent can import it for its price and cost metrics
without pulling in pandas. Sources and as-of dates are in nitrometer/data/SOURCES.md.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nitrometer.ec2 import looks_graviton, parse_instance_type, size_factor
from nitrometer.errors import ConfigError
from nitrometer.prices.cache import (
    COMPUTE_SP,
    INSTANCE_SP,
    ON_DEMAND,
    RESERVED,
    SAVINGS_PLAN,
    UPDATE_COMMAND,
    RateKey,
)
from nitrometer.prices.lookup import CachedRegion, load_region

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PRICES_FILE = DATA_DIR / "ec2_prices.csv"
MAPPING_FILE = DATA_DIR / "graviton_equivalents_by_generation.csv"

GENERATIONS = ("latest", "graviton2", "graviton3", "graviton4")
_MAPPING_COLUMN = {"latest": "default_graviton(latest_arm)", "graviton2": "graviton2",
                   "graviton3": "graviton3", "graviton4": "graviton4"}

LINUX = "RunInstances"
# Operations whose license has no Graviton equivalent: Windows and SQL Server (on Windows,
# Linux or RHEL), from the EC2 "usage operation" billing codes.
NO_GRAVITON_LICENSE = {
    "RunInstances:0002", "RunInstances:0006", "RunInstances:0102", "RunInstances:0202",
    "RunInstances:0800", "RunInstances:0004", "RunInstances:0100", "RunInstances:0200",
    "RunInstances:0014", "RunInstances:0110", "RunInstances:0210", "RunInstances:1014",
    "RunInstances:1110",
}
# How a usage category was bought, as the price list names it: (term, offering class).
PURCHASE = {"usage": (ON_DEMAND, None), "compute_sp": (SAVINGS_PLAN, COMPUTE_SP),
            "instance_sp": (SAVINGS_PLAN, INSTANCE_SP), "ri": (RESERVED, None)}
PACKAGED_SOURCE = "packaged snapshot"
CACHE_SOURCE = "AWS Price List bulk API"
# Where each data set comes from, shown in every report (details in data/SOURCES.md).
SOURCES = {
    "prices": "AWS Price List API (on-demand, Linux, shared tenancy, no license) via the "
              "aws/karpenter-provider-aws generated price tables @6fc13b52",
    "normalization_factors": "AWS EC2 User Guide, 'How Reserved Instance discounts are "
                             "applied' (normalization factor tables)",
    "mapping": "AWS Graviton Savings Dashboard v3.0.2 modernization_mapping "
               "(cloud-intelligence-dashboards-framework @8de0d7d3)",
}
MAPPING_AS_OF = "2026-06-22"

@dataclass(frozen=True)
class InstanceType:
    region: str
    instance_type: str
    family: str
    size: str
    arch: str
    vcpu: float | None
    price: float | None
    normalization_factor: float | None
    local_storage_gb: float | None = None


@dataclass(frozen=True)
class GravitonTarget:
    instance_type: str
    price: float | None  # None: the target has no price in that region


def _float(text: str) -> float | None:
    return float(text) if text.strip() else None


def local_storage_gb(text: str | None) -> float | None:
    """'2 x 1250 NVMe SSD' or '1250 GB NVMe SSD' -> GB of local disk; 0 when EBS-only."""
    if text is None or not text.strip():
        return None
    if "ebs" in text.lower():
        return 0.0
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
    if not numbers:
        return None
    match = re.match(r"^\s*(\d+)\s*x\s*(\d+(?:\.\d+)?)", text)
    return float(match.group(1)) * float(match.group(2)) if match else numbers[0]


class Reference:
    """Lookups over the packaged tables, with an optional user price file on top."""

    def __init__(self, prices_file: Path = PRICES_FILE, mapping_file: Path = MAPPING_FILE,
                 cache_dir: str | Path | None = None, use_cache: bool = False):
        self.types: dict[tuple[str, str], InstanceType] = {}
        self.specs: dict[str, InstanceType] = {}  # any region's row: arch, vcpu, NF
        as_of: set[str] = set()
        with open(prices_file, newline="") as f:
            for row in csv.DictReader(f):
                item = InstanceType(row["region"], row["instance_type"], row["family"],
                                    row["size"], row["arch"], _float(row["vcpu"]),
                                    _float(row["ondemand_usd_per_hour"]),
                                    _float(row["normalization_factor"]),
                                    local_storage_gb(row["instance_storage"]))
                self.types[(item.region, item.instance_type)] = item
                self.specs.setdefault(item.instance_type, item)
                as_of.add(row["as_of"])
        self.prices_as_of = max(as_of) if as_of else ""
        self.regions = sorted({region for region, _ in self.types})
        self.mapping: dict[str, dict[str, str]] = {}
        with open(mapping_file, newline="") as f:
            for row in csv.DictReader(f):
                self.mapping[row["x86_family"]] = {
                    gen: row[column].strip() for gen, column in _MAPPING_COLUMN.items()}
        self.overrides: dict[tuple[str, str], float] = {}  # (region or "", type) -> USD/h
        self.overrides_file: str | None = None
        # the cache from `nitrometer prices update` comes before the packaged snapshot
        self.cache_dir, self.use_cache = cache_dir, use_cache
        self._cached: dict[str, CachedRegion | None] = {}
        self.used_regions: set[str] = set()

    def cached(self, region: str) -> CachedRegion | None:
        if not self.use_cache or not region:
            return None
        if region not in self._cached:  # an open file, asked one rate at a time
            self._cached[region] = load_region(self.cache_dir, region)
        return self._cached[region]

    def rate(self, instance_type: str, region: str, operation: str = LINUX,
             term: str = ON_DEMAND, offering: str = "", lease: str = "",
             payment: str = "") -> float | None:
        """USD per hour of the type run with that operation, bought that way; None when
        unknown. A user price file (on-demand Linux) wins; a cached region answers alone
        (what it lacks does not exist there); else the packaged on-demand Linux rate."""
        self.used_regions.add(region)
        plain = term == ON_DEMAND and operation == LINUX
        if plain:
            for key in ((region, instance_type), ("", instance_type)):
                if key in self.overrides:
                    return self.overrides[key]
        cached = self.cached(region)
        if cached is not None:
            return cached.rate(RateKey(instance_type, operation, term, offering, lease,
                                       payment))
        if plain:
            item = self.types.get((region, instance_type))
            return item.price if item else None
        return None

    def purchase_rate(self, instance_type: str, region: str, operation: str, category: str,
                      lease: str = "", payment: str = "", offering: str = "") -> float | None:
        """The rate of the same operation, term and payment option (what the dashboard
        joins on); None for categories it does not price (Spot, Windows)."""
        if category not in PURCHASE:
            return None
        term, offering_class = PURCHASE[category]
        if term == ON_DEMAND:
            return self.rate(instance_type, region, operation)
        return self.rate(instance_type, region, operation, term, offering_class or offering,
                         lease, payment)

    def exists_in(self, instance_type: str, region: str) -> bool:
        """The price list knows the type in that region (cached regions only)."""
        cached = self.cached(region)
        return cached is not None and cached.has_type(instance_type)

    def load_prices(self, path: str | Path) -> int:
        """A user CSV (instance_type, price[, region]) whose rates replace the packaged ones."""
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError as exc:
            raise ConfigError(f"cannot read price file {path}: {exc.strerror}") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"{path} is not a CSV price file: {exc}") from None
        fields = {name.strip().lower() for name in (rows[0].keys() if rows else ())}
        price_column = next((c for c in ("price", "usd_per_hour", "ondemand_usd_per_hour")
                             if c in fields), None)
        if "instance_type" not in fields or price_column is None:
            raise ConfigError(f"{path}: a price file needs the columns instance_type and price "
                              "(region optional)")
        for number, row in enumerate(rows, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            try:
                price = float(row[price_column])
                parse_instance_type(row["instance_type"])
            except (ValueError, ConfigError):
                raise ConfigError(f"{path}:{number}: bad row {row['instance_type']!r}, "
                                  f"{row[price_column]!r}") from None
            if not math.isfinite(price) or price < 0:
                raise ConfigError(f"{path}:{number}: price {row[price_column]!r} for "
                                  f"{row['instance_type']!r} is not a finite, non-negative "
                                  "USD per hour")
            self.overrides[(row.get("region", ""), row["instance_type"].lower())] = price
        self.overrides_file = str(path)
        return len(rows)

    def lookup(self, instance_type: str, region: str) -> InstanceType | None:
        """The type in that region; for other regions the specs with no packaged price."""
        item = self.types.get((region, instance_type))
        if item is None and instance_type in self.specs:
            spec = self.specs[instance_type]
            item = InstanceType(region, instance_type, spec.family, spec.size, spec.arch,
                                spec.vcpu, None, spec.normalization_factor)
        return item

    def known(self, instance_type: str, region: str = "") -> bool:
        """In the packaged specs or the region's cached prices; or a mapped family with a
        size name EC2 uses (m5.lareg is a typo, not a type without a price)."""
        if instance_type in self.specs or self.exists_in(instance_type, region):
            return True
        family, size = parse_instance_type(instance_type)
        return family in self.mapping and (size_factor(size) is not None or size == "metal")

    def price(self, instance_type: str, region: str) -> float | None:
        """On-demand Linux USD per hour; a user price file wins, then the cache, then the
        packaged table."""
        return self.rate(instance_type, region)

    def local_storage(self, instance_type: str) -> float | None:
        spec = self.specs.get(instance_type)
        return spec.local_storage_gb if spec else None

    def storage_keeping_target(self, instance_type: str, region: str) -> str | None:
        """The cheapest Graviton type with at least the type's local NVMe and vCPUs, priced
        on demand in the region; None when there is none."""
        spec = self.specs.get(instance_type)
        if spec is None or not spec.local_storage_gb:
            return None
        best = None
        for name, candidate in self.specs.items():
            if (candidate.arch != "arm64" or not candidate.local_storage_gb
                    or candidate.local_storage_gb < spec.local_storage_gb
                    or (spec.vcpu or 0) > (candidate.vcpu or 0)):
                continue
            price = self.price(name, region)
            if price is not None and (best is None or price < best[0]):
                best = (price, name)
        return best[1] if best else None

    def arch(self, instance_type: str) -> str:
        spec = self.specs.get(instance_type)
        if spec and spec.arch:
            return spec.arch
        return "arm64" if looks_graviton(parse_instance_type(instance_type)[0]) else "x86_64"

    def normalization_factor(self, instance_type: str) -> float | None:
        """From the table; else derived from the size as the EC2 docs say."""
        spec = self.specs.get(instance_type)
        if spec and spec.normalization_factor is not None:
            return spec.normalization_factor
        family, size = parse_instance_type(instance_type)
        factor = size_factor(size)
        if factor is None and size == "metal":
            factor = self._metal_factor(family, spec.vcpu if spec else None)
        return factor

    def _metal_factor(self, family: str, vcpu: float | None) -> float | None:
        """Bare metal has the factor of the family's largest virtualized size (same vCPUs)."""
        sizes = [s for s in self.specs.values()
                 if s.family == family and not s.size.startswith("metal")
                 and s.normalization_factor is not None]
        same_vcpu = [s for s in sizes if vcpu is not None and s.vcpu == vcpu]
        pool = same_vcpu or sizes
        return max(s.normalization_factor for s in pool) if pool else None

    def graviton_type(self, instance_type: str, generation: str = "latest") -> str | None:
        """The mapped Graviton family at the same size, or None when there is none."""
        if generation not in GENERATIONS:
            raise ConfigError(f"unknown generation {generation!r} "
                              f"(one of {', '.join(GENERATIONS)})")
        family, size = parse_instance_type(instance_type)
        target_family = self.mapping.get(family, {}).get(generation, "")
        return f"{target_family}.{size}" if target_family else None

    def graviton_target(self, instance_type: str, region: str,
                        generation: str = "latest") -> GravitonTarget | None:
        """Target type and its price; None when unmapped or that size does not exist."""
        target = self.graviton_type(instance_type, generation)
        if target is None or (target not in self.specs and not self.exists_in(target, region)
                              and self.price(target, region) is None):
            return None
        return GravitonTarget(target, self.price(target, region))

    def region_source(self, region: str) -> dict:
        """Where the region's prices came from, and as of when."""
        cached = self.cached(region)
        if cached is not None:
            return {"source": f"{CACHE_SOURCE} ({cached.source})", "as_of": cached.as_of,
                    "cached": True}
        if any(r in (region, "") for r, _ in self.overrides):
            return {"source": f"user price file {self.overrides_file}", "as_of": None,
                    "cached": False}
        if region in self.regions:
            return {"source": f"{PACKAGED_SOURCE}: {SOURCES['prices']}",
                    "as_of": self.prices_as_of, "cached": False}
        return {"source": None, "as_of": None, "cached": False,
                "fix": UPDATE_COMMAND.format(region=region)}

    def sources(self) -> dict:
        """Provenance for reports: what each data set is, and as of when."""
        by_region = {region: self.region_source(region)
                     for region in sorted(r for r in self.used_regions if r)}
        return {
            "prices": {"source": SOURCES["prices"], "as_of": self.prices_as_of,
                       "regions": self.regions, "user_price_file": self.overrides_file,
                       "by_region": by_region},
            "normalization_factors": {"source": SOURCES["normalization_factors"],
                                      "as_of": self.prices_as_of},
            "mapping": {"source": SOURCES["mapping"], "as_of": MAPPING_AS_OF},
        }


@lru_cache(maxsize=1)
def default_reference() -> Reference:
    """The packaged tables (about a thousand rows) and the price cache, loaded once."""
    return Reference(use_cache=True)


def lookup_price(instance_type: str, region: str) -> float | None:
    return default_reference().price(instance_type, region)


def lookup_normalization_factor(instance_type: str) -> float | None:
    return default_reference().normalization_factor(instance_type)


def lookup_graviton(instance_type: str, region: str,
                    generation: str = "latest") -> GravitonTarget | None:
    return default_reference().graviton_target(instance_type, region, generation)
