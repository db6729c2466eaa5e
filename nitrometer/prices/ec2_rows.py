"""Which rows of a regional EC2 price list file (its CSV variant) price an instance hour.

Layout: AWS Billing User Guide, "Reading the service price list file for an AWS service"
(https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-service-price-list-file-for-services.html):
the first five rows are the file's metadata (FormatVersion, Disclaimer, Publication Date,
Version, OfferCode), the sixth names the columns, then one row per price dimension with the
product's attributes. A region's file also holds its Local and Wavelength Zones, Dedicated and
Host tenancy, capacity reservations, Capacity Blocks, BYOL and pre-installed software: each
row is kept or set aside by the first rule below it fails, and the update reports the counts.
"""

from __future__ import annotations

import math
import re
from operator import itemgetter

from nitrometer.errors import NitrometerError
from nitrometer.prices.cache import ON_DEMAND, RESERVED

INSTANCE_FAMILIES = ("Compute Instance", "Compute Instance (bare metal)")
HOURS_PER_YEAR = 24 * 365
NEEDED = ("TermType", "Unit", "PricePerUnit", "LeaseContractLength", "PurchaseOption",
          "OfferingClass", "Product Family", "Location Type", "Instance Type", "Tenancy",
          "License Model", "usageType", "operation", "CapacityStatus", "Pre Installed S/W")
OPTIONAL = ("MarketOption",)  # newer files only: OnDemand | CapacityBlock
# The box-usage operation of each OS and license ("Platform details and usage operation
# values", EC2 User Guide): RunInstances is Linux, :0010 RHEL, :0002 Windows, ...; Spot and
# other usage carry other operations.
BOX_OPERATION = re.compile(r"^RunInstances(:[0-9a-z]{4})?$")
# Operations that include SQL Server, and the edition the "Pre Installed S/W" column names.
SQL_SOFTWARE = {
    "RunInstances:0004": "SQL Std", "RunInstances:0006": "SQL Std",
    "RunInstances:0014": "SQL Std", "RunInstances:1014": "SQL Std",
    "RunInstances:0100": "SQL Ent", "RunInstances:0102": "SQL Ent",
    "RunInstances:0110": "SQL Ent", "RunInstances:1110": "SQL Ent",
    "RunInstances:0200": "SQL Web", "RunInstances:0202": "SQL Web",
    "RunInstances:0210": "SQL Web", "RunInstances:1210": "SQL Web",
}
# Instance hours in the region itself: "BoxUsage:<type>", with the region's usage-type prefix
# ("EU-", "UGW1-"); Local Zones add a second prefix (USE1-LAX1-), Spot says SpotUsage.
BOX_USAGE = re.compile(r"^(?:([A-Z0-9]+)-)?BoxUsage:(.+)$")

# (rule, what it sets aside), in the order they apply.
RULES = (
    ("product family", "not an instance (storage, transfer, hosts, ...)"),
    ("location type", "Local Zone, Wavelength Zone and Outposts rows"),
    ("tenancy", "Dedicated and Host tenancy"),
    ("capacity status", "capacity reservation rows (allocated, unused)"),
    ("market option", "Capacity Block rows"),
    ("usage type", "Spot-like and other non-box usage"),
    ("operation", "not a box-usage operation"),
    ("license model", "bring your own license"),
    ("pre-installed software", "software the operation does not price"),
    ("term", "other terms and units"),
    ("duplicate", "later rows for a rate already kept (the first is kept)"),
)


def rule_failed(row: tuple) -> str | None:
    """The first rule the row fails, None when it prices an instance hour."""
    (term, unit, _, lease, _, _, family, location_type, instance_type, tenancy, license_model,
     usage_type, operation, capacity, software, market) = row
    if family not in INSTANCE_FAMILIES:
        return "product family"
    if location_type != "AWS Region":
        return "location type"
    if tenancy != "Shared":
        return "tenancy"
    if capacity != "Used":
        return "capacity status"
    if market not in ("", "OnDemand"):
        return "market option"
    usage = BOX_USAGE.match(usage_type)
    if usage is None or usage.group(2) != instance_type:
        return "usage type"
    if not BOX_OPERATION.match(operation):
        return "operation"
    if license_model != "No License required":
        return "license model"
    if software != SQL_SOFTWARE.get(operation, "NA"):
        return "pre-installed software"
    if not ((term == ON_DEMAND and unit == "Hrs")
            or (term == RESERVED and unit in ("Hrs", "Quantity") and lease_years(lease))):
        return "term"
    return None


def lease_years(lease: str) -> int:
    digits = lease.lower().replace("yr", "").strip()
    return int(digits) if digits.isdigit() else 0


class Ec2Reader:
    """Reads the rows after the header; puts kept rows into the pending region's tables."""

    def __init__(self, header: list[str], url: str):
        missing = [name for name in NEEDED if name not in header]
        if missing:
            raise NitrometerError(f"{url}: not an EC2 price list file (no "
                                  f"{', '.join(missing)} column)")
        index = {name: i for i, name in enumerate(header)}
        picks = [index[name] for name in NEEDED]
        self.has_market = OPTIONAL[0] in index
        if self.has_market:
            picks.append(index[OPTIONAL[0]])
        self.pick = itemgetter(*picks)
        self.width = max(picks) + 1
        self.url = url
        self.meta: dict[str, str] = {"url": url}
        self.set_aside = {rule: 0 for rule, _ in RULES}
        self.prefixes: set[str] = set()  # usage-type prefixes of the region's own rows

    def rows(self, reader):
        """Sorts each row; yields (ON_DEMAND, record) and (RESERVED, record) for kept ones."""
        for row in reader:
            if len(row) < self.width:
                if any(cell.strip() for cell in row):
                    raise NitrometerError(f"{self.url} line {reader.line_num}: "
                                          f"{len(row)} cells, the header names more")
                continue
            picked = self.pick(row)
            if not self.has_market:
                picked = (*picked, "")
            price = _price(picked[2], self.url, reader.line_num)
            failed = rule_failed(picked)
            if failed:
                self.set_aside[failed] += 1
                continue
            term, unit, _, lease, payment, offering, _, _, instance_type = picked[:9]
            usage_type, operation = picked[11], picked[12]
            prefix = BOX_USAGE.match(usage_type).group(1) or ""
            if prefix not in self.prefixes:
                self.prefixes.add(prefix)
            if term == ON_DEMAND:
                yield ON_DEMAND, (instance_type, operation, price)
            else:
                yield RESERVED, (instance_type, operation, offering, lease, payment,
                                 lease_years(lease), unit, price)


def _price(text: str, url: str, line: int) -> float:
    try:
        price = float(text)
    except ValueError:
        price = math.nan
    if not math.isfinite(price) or price < 0:
        raise NitrometerError(f"{url} line {line}: price {text!r} is not a non-negative "
                              "number")
    return price
