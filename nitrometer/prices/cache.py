"""The local price cache: one SQLite file per region, only the columns a lookup uses.

Standard library only. A region's file is built under a temporary name beside the cache and
renamed into place when every region of an update is complete, so a reader (or a failed
update) never sees half a region. Reading is in nitrometer.prices.lookup.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

ON_DEMAND, RESERVED, SAVINGS_PLAN = "OnDemand", "Reserved", "SavingsPlan"
COMPUTE_SP, INSTANCE_SP = "ComputeSavingsPlans", "EC2InstanceSavingsPlans"
UPDATE_COMMAND = "nitrometer prices update --region {region}"
SUFFIX = ".sqlite"
RATE_COLUMNS = ("instance_type", "operation", "term", "offering", "lease", "payment")
SCHEMA = """
CREATE TABLE rates (instance_type TEXT NOT NULL, operation TEXT NOT NULL, term TEXT NOT NULL,
                    offering TEXT NOT NULL, lease TEXT NOT NULL, payment TEXT NOT NULL,
                    usd_per_hour REAL NOT NULL,
                    PRIMARY KEY (instance_type, operation, term, offering, lease, payment))
                    WITHOUT ROWID;
CREATE TABLE provenance (doc TEXT NOT NULL);
"""


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


def region_file(cache_dir: str | Path | None, region: str) -> Path:
    return prices_dir(cache_dir) / f"{region}{SUFFIX}"


@dataclass(frozen=True)
class RateKey:
    """What a rate is for (shared tenancy). On-demand has no offering, lease or payment."""

    instance_type: str
    operation: str = "RunInstances"
    term: str = ON_DEMAND
    offering: str = ""  # standard | convertible | ComputeSavingsPlans | EC2InstanceSavingsPlans
    lease: str = ""  # 1yr | 3yr
    payment: str = ""  # No Upfront | Partial Upfront | All Upfront


class PendingRegion:
    """A region's cache file under construction: a temporary file in the cache directory."""

    def __init__(self, cache_dir: str | Path | None, region: str):
        self.region = region
        self.target = region_file(cache_dir, region)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        import tempfile

        fd, name = tempfile.mkstemp(prefix=f".{region}.", suffix=SUFFIX,
                                    dir=self.target.parent)
        os.close(fd)
        self.path = Path(name)
        self.installed = False
        import sqlite3

        self.db = sqlite3.connect(str(self.path))
        # a scratch file: nothing to recover if the process dies, it is deleted
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.executescript(SCHEMA)

    def add_rates(self, rates) -> int:
        """(RateKey, USD/h) pairs; a key already present keeps its first rate. Rows added."""
        before = self.db.total_changes
        self.db.executemany("INSERT OR IGNORE INTO rates VALUES (?, ?, ?, ?, ?, ?, ?)",
                            ((k.instance_type, k.operation, k.term, k.offering, k.lease,
                              k.payment, float(v)) for k, v in rates))
        return self.db.total_changes - before

    def finish(self, meta: dict) -> None:
        count = self.db.execute("SELECT count(*) FROM rates").fetchone()[0]
        self.db.execute("INSERT INTO provenance VALUES (?)",
                        (json.dumps({**meta, "region": self.region, "rates": count}),))
        self.db.commit()
        self.db.execute("VACUUM")  # drop the pages of the scratch tables
        self.db.close()
        with open(self.path, "rb+") as f:
            os.fsync(f.fileno())

    def discard(self) -> None:
        """Drop the scratch file, unless it was installed."""
        self.db.close()
        if not self.installed:
            self.path.unlink(missing_ok=True)

    def install(self) -> Path:
        os.replace(self.path, self.target)
        self.installed = True
        return self.target


def install_all(pending: list[PendingRegion]) -> list[Path]:
    """Rename every finished region into place, once all of them are complete."""
    return [p.install() for p in pending]


def write_region(cache_dir: str | Path | None, region: str, rates: dict[RateKey, float],
                 meta: dict) -> Path:
    """A region's rates and provenance, written as one file replaced at once."""
    pending = PendingRegion(cache_dir, region)
    try:
        pending.add_rates(rates.items())
        pending.finish(meta)
    except BaseException:
        pending.discard()
        raise
    return pending.install()


def cached_regions(cache_dir: str | Path | None) -> list[str]:
    directory = prices_dir(cache_dir)
    if not directory.is_dir():
        return []
    return sorted(p.name[:-len(SUFFIX)] for p in directory.glob(f"*{SUFFIX}")
                  if not p.name.startswith("."))
