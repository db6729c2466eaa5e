"""Rates from the price cache, one query at a time, and the packaged on-demand snapshot.

Standard library only, and nothing from the apps: the agent asks for its own instance type
and region, so its memory does not grow with the cache (an indexed SQLite file read in
place, never loaded whole); the savings model asks the same way for each rate it needs.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from nitrometer.errors import NitrometerError
from nitrometer.prices.cache import (
    ON_DEMAND,
    UPDATE_COMMAND,
    RateKey,
    cached_regions,
    region_file,
)

PACKAGED_PRICES = Path(__file__).resolve().parent.parent / "data" / "ec2_prices.csv"
LINUX = "RunInstances"


class CachedRegion:
    """One region's cache file, opened read-only; a damaged file is a NitrometerError."""

    def __init__(self, region: str, path: Path):
        self.region, self.path = region, path
        # answers already asked for: a bill asks the same few keys many times
        self._rates: dict[RateKey, float | None] = {}
        self._types: dict[str, bool] = {}
        import sqlite3  # only where a cache exists: the agent without one never loads it

        try:
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                       check_same_thread=False)
            row = self._db.execute("SELECT doc FROM provenance").fetchone()
            self.meta = json.loads(row[0]) if row else None
            self._db.execute("SELECT usd_per_hour FROM rates LIMIT 1").fetchall()
        except (sqlite3.Error, ValueError) as exc:
            raise self._damaged(exc) from None
        if not isinstance(self.meta, dict):
            raise self._damaged("no provenance")

    def _damaged(self, why) -> NitrometerError:
        return NitrometerError(f"price cache {self.path} is damaged ({why}); run "
                               f"{UPDATE_COMMAND.format(region=self.region)}")

    def _query(self, sql: str, args: tuple = ()) -> list:
        import sqlite3

        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None

    def rate(self, key: RateKey) -> float | None:
        if key in self._rates:
            return self._rates[key]
        rows = self._query("SELECT usd_per_hour FROM rates WHERE instance_type = ? AND "
                           "operation = ? AND term = ? AND offering = ? AND lease = ? AND "
                           "payment = ?", (key.instance_type, key.operation, key.term,
                                           key.offering, key.lease, key.payment))
        self._rates[key] = rows[0][0] if rows else None
        return self._rates[key]

    def has_type(self, instance_type: str) -> bool:
        if instance_type not in self._types:
            self._types[instance_type] = bool(self._query(
                "SELECT 1 FROM rates WHERE instance_type = ? LIMIT 1", (instance_type,)))
        return self._types[instance_type]

    def count(self) -> int:
        return self._query("SELECT count(*) FROM rates")[0][0]

    def rates(self) -> dict[RateKey, float]:
        """Every rate (for listings and tests; lookups use rate())."""
        return {RateKey(*row[:6]): row[6] for row in self._query("SELECT * FROM rates")}

    @property
    def as_of(self) -> str:
        return str(self.meta.get("ec2", {}).get("publication_date", ""))[:10]

    @property
    def source(self) -> str:
        return str(self.meta.get("base_url", "AWS Price List bulk API"))

    def close(self) -> None:
        self._db.close()


def load_region(cache_dir: str | Path | None, region: str) -> CachedRegion | None:
    """The cached region, None when it was never updated; a damaged file is an error."""
    path = region_file(cache_dir, region)
    if not region or not path.is_file():
        return None
    return CachedRegion(region, path)


def open_region(cache_dir: str | Path | None, region: str, warn=None) -> CachedRegion | None:
    """The region's cache, or None; a damaged one raises, or goes to warn when given (the
    packaged snapshot then serves)."""
    try:
        return load_region(cache_dir, region)
    except NitrometerError as exc:
        if warn is None:
            raise
        warn(str(exc))
        return None


def packaged_price(instance_type: str, region: str,
                   prices_file: Path = PACKAGED_PRICES) -> float | None:
    """On-demand Linux USD/h of one type in the packaged snapshot (read row by row)."""
    with open(prices_file, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["region"] == region and row["instance_type"] == instance_type:
                text = row["ondemand_usd_per_hour"].strip()
                return float(text) if text else None
    return None


@dataclass(frozen=True)
class Price:
    usd_per_hour: float | None
    source: str  # "cache <url>, as of <date>" | "packaged snapshot" | "none"


def on_demand_price(instance_type: str, region: str, cache_dir: str | Path | None = None,
                    warn=None) -> Price:
    """On-demand Linux rate of one type: the region's cache answers alone when there is one
    (what it lacks does not exist there); else the packaged snapshot. A damaged cache is
    passed to warn (when given) and the snapshot serves."""
    cached = open_region(cache_dir, region, warn)
    if cached is not None:
        try:
            return Price(cached.rate(RateKey(instance_type, LINUX, ON_DEMAND)),
                         f"AWS Price List bulk API ({cached.source}), as of {cached.as_of}")
        finally:
            cached.close()
    price = packaged_price(instance_type, region)
    return Price(price, "packaged snapshot" if price is not None else "none")


__all__ = ["CachedRegion", "Price", "cached_regions", "load_region", "on_demand_price",
           "open_region", "packaged_price"]
