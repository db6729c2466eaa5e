"""Read the AWS Price List Bulk API (public files, no credentials) into the price cache.

The way in, as the AWS Billing User Guide documents it ("Reading the price list files",
https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/bulk-api-reading-price-list-files.html):
- the service index, offers/v1.0/aws/index.json ("Reading the service index file"): an
  "offers" object; AmazonEC2's entry gives currentRegionIndexUrl and, for Savings Plans,
  savingsPlanVersionIndexUrl (the published file also carries currentSavingsPlanIndexUrl).
  Savings Plans have no offer entry of their own;
- EC2's region index ("Service Region index file for AWS services"): "regions" is an object
  of regionCode -> {regionCode, currentVersionUrl}; each region's file is read in its CSV
  variant (same URL, .csv), a row at a time (see ec2_rows);
- the Savings Plans version index ("Service version index file for Savings Plan"):
  currentOfferVersionUrl leads to .../AWSComputeSavingsPlan/current/region_index.json, whose
  "regions" is an array of {regionCode, versionUrl} ("Service Region index file for Savings
  Plan"); each region's JSON file is read as a stream (see plans).
Rates go straight into a scratch SQLite file per region; the cache is replaced only when every
region asked for is complete, so a failed update leaves the previous cache whole.
"""

from __future__ import annotations

import csv
import http.client
import io
import sys
from datetime import datetime, timezone

import requests
import urllib3

from nitrometer.errors import NitrometerError
from nitrometer.prices.cache import ON_DEMAND, PendingRegion, install_all, prices_dir
from nitrometer.prices.ec2_rows import HOURS_PER_YEAR, Ec2Reader
from nitrometer.prices.plans import PlanReader

DEFAULT_BASE_URL = "https://pricing.us-east-1.amazonaws.com"
OFFER_INDEX = "/offers/v1.0/aws/index.json"
EC2 = "AmazonEC2"
TIMEOUT = (10, 120)
BATCH = 5000
STAGING = """
CREATE TABLE ri_parts (instance_type TEXT, operation TEXT, offering TEXT, lease TEXT,
                       payment TEXT, years INTEGER, unit TEXT, price REAL,
                       PRIMARY KEY (instance_type, operation, offering, lease, payment, unit))
                       WITHOUT ROWID;
CREATE TABLE sp_rates (term INTEGER, instance_type TEXT, operation TEXT, price REAL,
                       PRIMARY KEY (term, instance_type, operation)) WITHOUT ROWID;
CREATE TABLE sp_plans (term INTEGER PRIMARY KEY, family TEXT, lease TEXT, payment TEXT);
"""
# an RI's upfront fee spread over the term's hours, on top of its hourly fee
AMORTIZE = f"""
INSERT OR IGNORE INTO rates
SELECT instance_type, operation, 'Reserved', offering, lease, payment,
       SUM(CASE unit WHEN 'Hrs' THEN price ELSE 0 END)
       + SUM(CASE unit WHEN 'Quantity' THEN price ELSE 0 END) / (years * {HOURS_PER_YEAR}.0)
FROM ri_parts GROUP BY instance_type, operation, offering, lease, payment, years
"""
READ_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class _Counting(io.RawIOBase):
    """A response body as a file: moves the progress bar, and turns a dropped connection
    (or a body shorter than its Content-Length) into one line."""

    def __init__(self, raw, bar, url: str, expected: int | None):
        self.raw, self.bar, self.url, self.expected, self.count = raw, bar, url, expected, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.raw.read(len(buffer))
        except READ_ERRORS as exc:
            raise self._dropped(exc.__class__.__name__) from None
        if not data and self.expected is not None and self.count < self.expected:
            raise self._dropped(f"{self.expected:,} announced")
        buffer[:len(data)] = data
        self.count += len(data)
        self.bar.update(len(data))
        return len(data)

    def _dropped(self, why: str) -> NitrometerError:
        return NitrometerError(f"connection to {self.url} dropped after {self.count:,} bytes "
                               f"({why})")


def _need(value, kind: type, url: str, what: str):
    if value is None:
        raise NitrometerError(f"{url}: {what} is missing, which the Price List Bulk API "
                              "documents")
    if not isinstance(value, kind):
        shape = {dict: "an object", list: "an array", str: "a string"}[kind]
        raise NitrometerError(f"{url}: {what} is not {shape} as the Price List Bulk API "
                              f"documents it ({type(value).__name__})")
    return value


class PriceList:
    def __init__(self, base_url: str = DEFAULT_BASE_URL, progress: bool = False):
        self.base_url = base_url.rstrip("/")
        self.progress = progress
        self.session = requests.Session()

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else self.base_url + path

    def _get(self, path: str, stream: bool = False) -> requests.Response:
        url = self._url(path)
        try:
            response = self.session.get(url, stream=stream, timeout=TIMEOUT)
        except requests.RequestException as exc:
            from nitrometer.neterrors import describe

            raise NitrometerError(f"cannot read {url}: {describe(exc)}") from None
        if response.status_code != 200:
            response.close()
            raise NitrometerError(f"cannot read {url}: HTTP {response.status_code}")
        return response

    def _json(self, path: str) -> dict:
        try:
            body = self._get(path).json()
        except ValueError:
            raise NitrometerError(f"{self._url(path)} is not JSON") from None
        except requests.RequestException as exc:
            raise NitrometerError(f"cannot read {self._url(path)}: "
                                  f"{exc.__class__.__name__}") from None
        return _need(body, dict, self._url(path), "the file")

    def _stream(self, path: str, what: str):
        """A binary file over the response body, and the progress bar it moves."""
        from tqdm import tqdm

        response = self._get(path, stream=True)
        response.raw.decode_content = True
        size = response.headers.get("Content-Length", "")
        size = int(size) if size.isdigit() else None
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=what, leave=False,
                   disable=not self.progress, file=sys.stderr)
        # a compressed body decodes to more bytes than its length says
        expected = None if response.headers.get("Content-Encoding") else size
        raw = _Counting(response.raw, bar, self._url(path), expected)
        return io.BufferedReader(raw, 1 << 20), bar, response

    def region_files(self, warn=_warn) -> tuple[dict[str, str], dict[str, str], dict]:
        """region -> EC2 file and region -> Savings Plans file, and the index's date."""
        index_url = self._url(OFFER_INDEX)
        index = self._json(OFFER_INDEX)
        offers = _need(index.get("offers"), dict, index_url, "'offers'")
        if EC2 not in offers:
            raise NitrometerError(f"{index_url} lists no {EC2} offer")
        entry = _need(offers[EC2], dict, index_url, f"offers.{EC2}")
        region_index = _need(entry.get("currentRegionIndexUrl"), str, index_url,
                             f"offers.{EC2}.currentRegionIndexUrl")
        regions = _need(self._json(region_index).get("regions"), dict,
                        self._url(region_index), "'regions'")
        ec2 = {}
        for code, item in regions.items():
            item = _need(item, dict, self._url(region_index), f"regions.{code}")
            ec2[code] = _need(item.get("currentVersionUrl"), str, self._url(region_index),
                              f"regions.{code}.currentVersionUrl")
        sp_index = self._savings_plan_index(entry, index_url, warn)
        sp: dict[str, str] = {}
        if sp_index:
            url = self._url(sp_index)
            for n, item in enumerate(_need(self._json(sp_index).get("regions"), list, url,
                                           "'regions'")):
                item = _need(item, dict, url, f"regions[{n}]")
                code = _need(item.get("regionCode"), str, url, f"regions[{n}].regionCode")
                sp[code] = _need(item.get("versionUrl"), str, url, f"regions[{n}].versionUrl")
        return ec2, sp, {"publication_date": str(index.get("publicationDate", "")),
                         "savings_plan_index": self._url(sp_index) if sp_index else None}

    def _savings_plan_index(self, entry: dict, index_url: str, warn) -> str | None:
        """The current Savings Plans region index, from AmazonEC2's own entry."""
        current = entry.get("currentSavingsPlanIndexUrl")
        if current is not None:
            return _need(current, str, index_url, f"offers.{EC2}.currentSavingsPlanIndexUrl")
        versions = entry.get("savingsPlanVersionIndexUrl")
        if versions is None:
            warn(f"{index_url} gives {EC2} no savingsPlanVersionIndexUrl: no Savings Plans "
                 "rates are cached")
            return None
        versions = _need(versions, str, index_url, f"offers.{EC2}.savingsPlanVersionIndexUrl")
        return _need(self._json(versions).get("currentOfferVersionUrl"), str,
                     self._url(versions), "'currentOfferVersionUrl'")

    def ec2_rates(self, path: str, pending: PendingRegion) -> Ec2Reader:
        """On-demand and RI rates of one regional EC2 file (its CSV variant)."""
        csv_path = path[:-len(".json")] + ".csv" if path.endswith(".json") else path
        url = self._url(csv_path)
        body, bar, response = self._stream(csv_path, "EC2 prices")
        db = pending.db
        db.executescript(STAGING)
        meta = {"url": url}
        with response, bar:
            reader = csv.reader(io.TextIOWrapper(body, encoding="utf-8-sig", newline=""))
            try:
                rows = Ec2Reader(_read_preamble(reader, meta), url)
                on_demand, reserved = [], []
                for kind, record in rows.rows(reader):
                    (on_demand if kind == ON_DEMAND else reserved).append(record)
                    if len(on_demand) + len(reserved) >= BATCH:
                        rows.set_aside["duplicate"] += _flush(db, on_demand, reserved)
                rows.set_aside["duplicate"] += _flush(db, on_demand, reserved)
            except UnicodeDecodeError as exc:
                raise NitrometerError(f"{url}: not UTF-8 text (byte "
                                      f"{exc.object[exc.start:exc.start + 1]!r}: {exc.reason})"
                                      ) from None
            except csv.Error as exc:
                raise NitrometerError(f"{url} line {reader.line_num}: not CSV ({exc})") \
                    from None
        db.execute(AMORTIZE)
        db.execute("DROP TABLE ri_parts")
        rows.meta.update(meta)
        return rows

    def savings_plan_rates(self, path: str, pending: PendingRegion,
                           prefixes: set[str]) -> PlanReader:
        """Compute and EC2 Instance Savings Plan rates of one regional Savings Plans file."""
        body, bar, response = self._stream(path, "Savings Plans prices")
        plans = PlanReader(self._url(path), prefixes)
        db, batch, duplicates = pending.db, [], 0
        with response, bar:
            for record in plans.rates(body):
                batch.append(record)
                if len(batch) >= BATCH:
                    duplicates += _insert(db, "INSERT OR IGNORE INTO sp_rates VALUES "
                                              "(?, ?, ?, ?)", batch)
            duplicates += _insert(db, "INSERT OR IGNORE INTO sp_rates VALUES (?, ?, ?, ?)",
                                  batch)
        terms = [(t, *plan) for t in plans.term_sku if (plan := plans.plan_of(t))]
        db.executemany("INSERT INTO sp_plans VALUES (?, ?, ?, ?)", terms)
        staged = db.execute("SELECT count(*) FROM sp_rates").fetchone()[0]
        joined = db.execute("SELECT count(*) FROM sp_rates JOIN sp_plans USING (term)"
                            ).fetchone()[0]
        before = db.total_changes
        db.execute("INSERT OR IGNORE INTO rates SELECT r.instance_type, r.operation, "
                   "'SavingsPlan', p.family, p.lease, p.payment, r.price "
                   "FROM sp_rates r JOIN sp_plans p USING (term)")
        plans.set_aside["plan"] += staged - joined
        plans.set_aside["duplicate"] += duplicates + joined - (db.total_changes - before)
        return plans


def _insert(db, sql: str, batch: list) -> int:
    """Rows of the batch that were already there (a key keeps its first row)."""
    before = db.total_changes
    db.executemany(sql, batch)
    duplicates = len(batch) - (db.total_changes - before)
    batch.clear()
    return duplicates


def _flush(db, on_demand: list, reserved: list) -> int:
    return (_insert(db, "INSERT OR IGNORE INTO rates VALUES (?, ?, 'OnDemand', '', '', '', ?)",
                    on_demand)
            + _insert(db, "INSERT OR IGNORE INTO ri_parts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      reserved))


def _read_preamble(reader, meta: dict) -> list[str]:
    """The metadata rows before the column names (five, documented); the column names."""
    names = {"FormatVersion": "format_version", "Publication Date": "publication_date",
             "Version": "version", "OfferCode": "offer_code"}
    for row in reader:
        if row and row[0] == "SKU":
            return row
        if len(row) >= 2 and row[0] in names:
            meta[names[row[0]]] = row[1]
        if reader.line_num > 10:
            break
    raise NitrometerError(f"{meta['url']}: no column names (SKU, ...) after the metadata rows")


def _summary(counts: dict[str, int]) -> str:
    parts = [f"{n:,} {rule}" for rule, n in counts.items() if n]
    return ", ".join(parts) if parts else "none"


def update(regions: list[str] | None, cache_dir, base_url: str = DEFAULT_BASE_URL,
           progress: bool = False, log=print, warn=_warn) -> list[str]:
    """Fetch every named region (all the index lists when none); replace them together."""
    price_list = PriceList(base_url, progress)
    ec2_files, sp_files, index_meta = price_list.region_files(warn)
    chosen = regions or sorted(ec2_files)
    unknown = [r for r in chosen if r not in ec2_files]
    if unknown:
        raise NitrometerError(f"the price list has no EC2 prices for region "
                              f"{', '.join(unknown)}")
    pending: list[PendingRegion] = []
    try:
        for region in chosen:
            pending.append(PendingRegion(cache_dir, region))
            log(_update_region(price_list, pending[-1], ec2_files[region],
                               sp_files.get(region), index_meta, warn))
        paths = install_all(pending)
    finally:
        for region in pending:
            region.discard()  # the scratch file, when it was not installed
    for stale in (".csv", ".json"):  # the cache's earlier format
        for region in chosen:
            (prices_dir(cache_dir) / f"{region}{stale}").unlink(missing_ok=True)
    log(f"cache updated: {', '.join(str(p) for p in paths)}")
    return chosen


def _update_region(price_list: PriceList, pending: PendingRegion, ec2_file: str,
                   sp_file: str | None, index_meta: dict, warn) -> str:
    region = pending.region
    meta = {"base_url": price_list.base_url, "offer_index": index_meta,
            "updated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    ec2 = price_list.ec2_rates(ec2_file, pending)
    meta["ec2"] = {**ec2.meta, "set_aside": ec2.set_aside}
    line = f"{region}: EC2 rows set aside: {_summary(ec2.set_aside)}"
    if sp_file is None:
        if index_meta.get("savings_plan_index"):
            warn(f"{index_meta['savings_plan_index']} lists no Savings Plans file for "
                 f"{region}: no Savings Plans rates for it")
    else:
        plans = price_list.savings_plan_rates(sp_file, pending, ec2.prefixes)
        meta["savings_plans"] = {**plans.meta, "set_aside": plans.set_aside}
        line += f"; Savings Plans rates set aside: {_summary(plans.set_aside)}"
    counts = dict(pending.db.execute("SELECT term, count(*) FROM rates GROUP BY term"))
    pending.db.executescript("DROP TABLE sp_rates; DROP TABLE sp_plans;")
    pending.finish(meta)
    return (f"{region}: {sum(counts.values()):,} rates ({counts.get('OnDemand', 0):,} "
            f"on-demand, {counts.get('Reserved', 0):,} reserved, "
            f"{counts.get('SavingsPlan', 0):,} Savings Plans), prices as of "
            f"{meta['ec2'].get('publication_date', '?')[:10]}\n{line}")
