"""Packaged reference data: on-demand prices, normalization factors, x86 -> Graviton mapping.

Standard library only (csv), so the agent can import it for its price and cost metrics
without pulling in pandas. Sources and as-of dates are in nitrometer/data/SOURCES.md.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nitrometer.ec2 import parse_instance_type
from nitrometer.errors import ConfigError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PRICES_FILE = DATA_DIR / "ec2_prices.csv"
MAPPING_FILE = DATA_DIR / "graviton_equivalents_by_generation.csv"

GENERATIONS = ("latest", "graviton2", "graviton3", "graviton4")
_MAPPING_COLUMN = {"latest": "default_graviton(latest_arm)", "graviton2": "graviton2",
                   "graviton3": "graviton3", "graviton4": "graviton4"}

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


def looks_graviton(family: str) -> bool:
    """Graviton families carry a 'g' after the generation digit (m6g, c7gn, im4gn, x2gd)."""
    match = _FAMILY_SUFFIX.match(family)
    return bool(match) and "g" in match.group(1)


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


@dataclass(frozen=True)
class GravitonTarget:
    instance_type: str
    price: float | None  # None: the target has no price in that region


def _float(text: str) -> float | None:
    return float(text) if text.strip() else None


class Reference:
    """Lookups over the packaged tables, with an optional user price file on top."""

    def __init__(self, prices_file: Path = PRICES_FILE, mapping_file: Path = MAPPING_FILE):
        self.types: dict[tuple[str, str], InstanceType] = {}
        self.specs: dict[str, InstanceType] = {}  # any region's row: arch, vcpu, NF
        as_of: set[str] = set()
        with open(prices_file, newline="") as f:
            for row in csv.DictReader(f):
                item = InstanceType(row["region"], row["instance_type"], row["family"],
                                    row["size"], row["arch"], _float(row["vcpu"]),
                                    _float(row["ondemand_usd_per_hour"]),
                                    _float(row["normalization_factor"]))
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

    def known(self, instance_type: str) -> bool:
        return instance_type in self.specs or parse_instance_type(instance_type)[0] in self.mapping

    def price(self, instance_type: str, region: str) -> float | None:
        """On-demand USD per hour; a user price file wins over the packaged table."""
        for key in ((region, instance_type), ("", instance_type)):
            if key in self.overrides:
                return self.overrides[key]
        item = self.types.get((region, instance_type))
        return item.price if item else None

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
        if target is None or (target not in self.specs and self.price(target, region) is None):
            return None
        return GravitonTarget(target, self.price(target, region))

    def sources(self) -> dict:
        """Provenance for reports: what each data set is, and as of when."""
        return {
            "prices": {"source": SOURCES["prices"], "as_of": self.prices_as_of,
                       "regions": self.regions, "user_price_file": self.overrides_file},
            "normalization_factors": {"source": SOURCES["normalization_factors"],
                                      "as_of": self.prices_as_of},
            "mapping": {"source": SOURCES["mapping"], "as_of": MAPPING_AS_OF},
        }


@lru_cache(maxsize=1)
def default_reference() -> Reference:
    """The packaged tables, loaded once (about a thousand rows)."""
    return Reference()


def lookup_price(instance_type: str, region: str) -> float | None:
    return default_reference().price(instance_type, region)


def lookup_normalization_factor(instance_type: str) -> float | None:
    return default_reference().normalization_factor(instance_type)


def lookup_graviton(instance_type: str, region: str,
                    generation: str = "latest") -> GravitonTarget | None:
    return default_reference().graviton_target(instance_type, region, generation)
