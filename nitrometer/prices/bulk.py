"""Read the AWS Price List bulk API (public offer files, no credentials) into the cache.

EC2: offers/v1.0/aws/index.json -> AmazonEC2's region index -> each region's offer file in
its CSV variant, read a line at a time (hundreds of MB: never held in memory). Savings Plans:
AWSComputeSavingsPlan's region index -> each region's JSON file (Compute and EC2 Instance
Savings Plans together), parsed as a stream with ijson.

Kept, per region and instance type, with the filters the Graviton Savings Dashboard prices
with: capacity status Used, license model "No License required" (the operating system's own
license is in its operation: RunInstances:0010 is RHEL), Hrs rates of BoxUsage; on-demand
and RI rates per operation and tenancy (RI upfront fees amortized over the term's hours,
24 x 365 a year), Savings Plan rates per term and payment option.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from datetime import datetime, timezone

import requests

from nitrometer.errors import NitrometerError
from nitrometer.prices.cache import (
    ON_DEMAND,
    RESERVED,
    SAVINGS_PLAN,
    RateKey,
    write_region,
)

DEFAULT_BASE_URL = "https://pricing.us-east-1.amazonaws.com"
OFFER_INDEX = "/offers/v1.0/aws/index.json"
EC2, SAVINGS_PLANS = "AmazonEC2", "AWSComputeSavingsPlan"
INSTANCE_FAMILIES = ("Compute Instance", "Compute Instance (bare metal)")
SP_FAMILIES = ("ComputeSavingsPlans", "EC2InstanceSavingsPlans")
HOURS_PER_YEAR = 24 * 365
TIMEOUT = (10, 120)


class _Counting(io.RawIOBase):
    """A response body as a file that moves a progress bar by the bytes read."""

    def __init__(self, raw, bar):
        self.raw, self.bar = raw, bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        self.bar.update(len(data))
        return len(data)


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
            return self._get(path).json()
        except ValueError:
            raise NitrometerError(f"{self._url(path)} is not JSON") from None

    def _stream(self, path: str, what: str):
        """A binary file over the response body, and the progress bar it moves."""
        from tqdm import tqdm

        response = self._get(path, stream=True)
        response.raw.decode_content = True
        size = response.headers.get("Content-Length")
        bar = tqdm(total=int(size) if size and size.isdigit() else None, unit="B",
                   unit_scale=True, desc=what, leave=False, disable=not self.progress,
                   file=sys.stderr)
        return io.BufferedReader(_Counting(response.raw, bar), 1 << 20), bar, response

    def region_files(self) -> tuple[dict[str, str], dict[str, str], dict]:
        """region -> EC2 offer file and region -> Savings Plans file, and the index's date."""
        index = self._json(OFFER_INDEX)
        offers = index.get("offers", {})
        if EC2 not in offers:
            raise NitrometerError(f"{self._url(OFFER_INDEX)} lists no {EC2} offer")
        ec2_index = self._json(offers[EC2]["currentRegionIndexUrl"])
        ec2 = {code: entry["currentVersionUrl"]
               for code, entry in ec2_index.get("regions", {}).items()}
        sp: dict[str, str] = {}
        if SAVINGS_PLANS in offers:
            entry = offers[SAVINGS_PLANS]
            url = entry.get("currentRegionIndexUrl") or entry.get("currentSavingsPlanIndexUrl")
            if url is None and entry.get("versionIndexUrl"):
                url = self._json(entry["versionIndexUrl"]).get("currentOfferVersionUrl")
            if url:
                sp_index = self._json(url)
                sp = {r["regionCode"]: r["versionUrl"] for r in sp_index.get("regions", [])}
        return ec2, sp, {"publication_date": index.get("publicationDate", "")}

    def ec2_rates(self, path: str, rates: dict[RateKey, float]) -> dict:
        """On-demand and RI rates of one regional EC2 offer file (its CSV variant)."""
        csv_path = path[:-len(".json")] + ".csv" if path.endswith(".json") else path
        body, bar, response = self._stream(csv_path, "EC2 prices")
        meta: dict[str, str] = {"url": self._url(csv_path)}
        reserved: dict[tuple[str, str], dict] = {}
        with response, bar:
            text = io.TextIOWrapper(body, encoding="utf-8-sig", newline="")
            reader = csv.reader(text)
            header = _read_preamble(reader, meta)
            column = {name: i for i, name in enumerate(header)}
            need = ("SKU", "OfferTermCode", "TermType", "Unit", "PricePerUnit",
                    "LeaseContractLength", "PurchaseOption", "OfferingClass", "Product Family",
                    "Instance Type", "Tenancy", "License Model", "operation", "CapacityStatus",
                    "usageType")
            missing = [name for name in need if name not in column]
            if missing:
                raise NitrometerError(f"{meta['url']}: not an EC2 offer file (no "
                                      f"{', '.join(missing)} column)")
            for row in _rows(reader, column, need):
                if (row["Product Family"] not in INSTANCE_FAMILIES
                        or row["CapacityStatus"] != "Used"
                        or row["License Model"] != "No License required"
                        or row["Tenancy"] not in ("Shared", "Dedicated")):
                    continue
                price = float(row["PricePerUnit"] or 0)
                key = RateKey(row["Instance Type"], row["operation"], row["TermType"],
                              row["OfferingClass"], row["LeaseContractLength"],
                              row["PurchaseOption"], row["Tenancy"])
                if row["TermType"] == ON_DEMAND and row["Unit"] == "Hrs":
                    rates[RateKey(key.instance_type, key.operation, ON_DEMAND,
                                  tenancy=key.tenancy)] = price
                elif row["TermType"] == RESERVED:
                    parts = reserved.setdefault((row["SKU"], row["OfferTermCode"]),
                                                {"key": key, "Hrs": 0.0, "Quantity": 0.0})
                    if row["Unit"] in ("Hrs", "Quantity"):
                        parts[row["Unit"]] += price
        for parts in reserved.values():
            key = parts["key"]
            years = _years(key.lease)
            if years:
                rates[key] = parts["Hrs"] + parts["Quantity"] / (years * HOURS_PER_YEAR)
        return meta

    def savings_plan_rates(self, path: str, rates: dict[RateKey, float]) -> dict:
        """Compute and EC2 Instance Savings Plan rates of one regional Savings Plans file."""
        import ijson

        body, bar, response = self._stream(path, "Savings Plans prices")
        meta: dict[str, str] = {"url": self._url(path)}
        plans: dict[str, tuple[str, str, str]] = {}  # sku -> family, term, payment
        with response, bar:
            try:
                for kind, item in _items(ijson.parse(body), meta):
                    if kind == "product":
                        attributes = item.get("attributes", {})
                        if item.get("productFamily") in SP_FAMILIES:
                            plans[item["sku"]] = (item["productFamily"],
                                                  attributes.get("purchaseTerm", ""),
                                                  attributes.get("purchaseOption", ""))
                    elif item.get("sku") in plans:
                        _plan_rates(item, plans[item["sku"]], rates)
            except ijson.JSONError as exc:
                raise NitrometerError(f"{meta['url']}: not a Savings Plans offer file "
                                      f"({exc})") from None
        return meta


def _read_preamble(reader, meta: dict) -> list[str]:
    """The metadata lines ("Publication Date", ...) before the header row; the header."""
    names = {"Publication Date": "publication_date", "Version": "version",
             "OfferCode": "offer_code"}
    for row in reader:
        if row and row[0] == "SKU":
            return row
        if len(row) >= 2 and row[0] in names:
            meta[names[row[0]]] = row[1]
    raise NitrometerError(f"{meta['url']}: no header row (SKU, ...) found")


def _rows(reader, column: dict[str, int], names: tuple[str, ...]) -> Iterator[dict]:
    width = max(column[name] for name in names) + 1
    for row in reader:
        if len(row) >= width:
            yield {name: row[column[name]] for name in names}


def _years(lease: str) -> int:
    digits = lease.lower().removesuffix("yr").strip()
    return int(digits) if digits.isdigit() else 0


def _plan_rates(term: dict, plan: tuple[str, str, str], rates: dict[RateKey, float]) -> None:
    family, purchase_term, payment = plan
    length = term.get("leaseContractLength") or {}
    lease = (f"{length['duration']}yr" if str(length.get("unit", "")).lower() == "year"
             and length.get("duration") else purchase_term)
    for rate in term.get("rates", []):
        usage_type = rate.get("discountedUsageType", "")
        # the dashboard's filter: shared-tenancy instance hours, not dedicated hosts
        if "BoxUsage" not in usage_type or "HostBoxUsage" in usage_type:
            continue
        if rate.get("unit", "Hrs") != "Hrs":
            continue
        instance_type = rate.get("discountedInstanceType") or usage_type.rpartition(":")[2]
        price = (rate.get("discountedRate") or {}).get("price")
        if not instance_type or price is None:
            continue
        rates[RateKey(instance_type, rate.get("discountedOperation", ""), SAVINGS_PLAN,
                      family, lease, payment)] = float(price)


def _items(events, meta: dict) -> Iterator[tuple[str, dict]]:
    """("product", item) for products[] and ("term", item) for terms.savingsPlan[], one
    at a time from the event stream; the file's publicationDate into meta."""
    import ijson

    builder, kind = None, ""
    wanted = {"products.item": "product", "terms.savingsPlan.item": "term"}
    for prefix, event, value in events:
        if builder is None:
            if event == "start_map" and prefix in wanted:
                builder, kind, top = ijson.ObjectBuilder(), wanted[prefix], prefix
                builder.event(event, value)
            elif prefix == "publicationDate":
                meta["publication_date"] = value
            elif prefix == "version":
                meta["version"] = value
            continue
        builder.event(event, value)
        if event == "end_map" and prefix == top:
            yield kind, builder.value
            builder = None


def update(regions: list[str] | None, cache_dir, base_url: str = DEFAULT_BASE_URL,
           progress: bool = False, log=print) -> list[str]:
    """Fetch every named region (all the offer index lists when none) into the cache."""
    price_list = PriceList(base_url, progress)
    ec2_files, sp_files, index_meta = price_list.region_files()
    chosen = regions or sorted(ec2_files)
    unknown = [r for r in chosen if r not in ec2_files]
    if unknown:
        raise NitrometerError(f"the price list has no EC2 prices for region "
                              f"{', '.join(unknown)}")
    for region in chosen:
        rates: dict[RateKey, float] = {}
        meta = {"base_url": price_list.base_url, "offer_index": index_meta,
                "updated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        meta["ec2"] = price_list.ec2_rates(ec2_files[region], rates)
        if region in sp_files:
            meta["savings_plans"] = price_list.savings_plan_rates(sp_files[region], rates)
        path = write_region(cache_dir, region, rates, meta)
        log(f"{region}: {len(rates):,} rates, prices as of "
            f"{meta['ec2'].get('publication_date', '?')[:10]} -> {path}")
    return chosen
