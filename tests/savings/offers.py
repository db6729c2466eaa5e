"""Trimmed AWS Price List bulk API files in the published layout, served on 127.0.0.1.

The offer index (offers/v1.0/aws/index.json), EC2's region index and regional offer files
(the CSV variant: five metadata lines, then one row per price dimension with the product's
attributes), and the Savings Plans region index and regional JSON files (products[] and
terms.savingsPlan[] with rates keyed by usage type and operation).
"""

from __future__ import annotations

import csv
import io
import json
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = "20261120000000"
PUBLISHED = "2026-11-20T00:00:00Z"
LOCATIONS = {"us-east-1": ("US East (N. Virginia)", ""), "eu-west-1": ("EU (Ireland)", "EU-")}
# The columns of the published CSV, in its order (the attributes this test does not use are
# left out of the trimmed file, as the reader must not depend on them).
EC2_COLUMNS = ["SKU", "OfferTermCode", "RateCode", "TermType", "PriceDescription",
               "EffectiveDate", "StartingRange", "EndingRange", "Unit", "PricePerUnit",
               "Currency", "RelatedTo", "LeaseContractLength", "PurchaseOption", "OfferingClass",
               "Product Family", "serviceCode", "Location", "Location Type", "Instance Type",
               "Current Generation", "Instance Family", "vCPU", "Physical Processor", "Memory",
               "Storage", "Tenancy", "Operating System", "License Model", "usageType",
               "operation", "CapacityStatus", "Pre Installed S/W", "Region Code"]
OS = {"RunInstances": ("Linux", "NA"), "RunInstances:0010": ("RHEL", "NA"),
      "RunInstances:0004": ("Linux", "SQL Std"), "RunInstances:0002": ("Windows", "NA")}

# (region, type, operation) -> on-demand USD/h
ON_DEMAND = {
    ("us-east-1", "m5.large", "RunInstances"): 0.096,
    ("us-east-1", "m5.large", "RunInstances:0010"): 0.1248,
    ("us-east-1", "m5.large", "RunInstances:0004"): 0.416,
    ("us-east-1", "m5.large", "RunInstances:0002"): 0.188,
    ("us-east-1", "m6g.large", "RunInstances"): 0.077,
    ("us-east-1", "m6g.large", "RunInstances:0010"): 0.1058,
    ("us-east-1", "m5.metal", "RunInstances"): 4.608,
    ("us-east-1", "m6g.metal", "RunInstances"): 2.464,
    ("us-east-1", "i3en.xlarge", "RunInstances"): 0.452,
    ("us-east-1", "i4g.xlarge", "RunInstances"): 0.30888,
    ("us-east-1", "is4gen.xlarge", "RunInstances"): 0.5763,
    ("us-east-1", "im4gn.2xlarge", "RunInstances"): 0.72758,
    ("eu-west-1", "m5.large", "RunInstances"): 0.107,
    ("eu-west-1", "m6g.large", "RunInstances"): 0.086,
}
# (region, type) -> standard 1yr Partial Upfront RI: hourly fee and upfront fee
RESERVED = {("us-east-1", "m5.large"): (0.028, 245.0), ("us-east-1", "m6g.large"): (0.022, 196.0)}
# (region, plan sku, type, operation) -> USD/h
SP = {("us-east-1", "CSP1NU", "m5.large", "RunInstances"): 0.068,
      ("us-east-1", "CSP1NU", "m6g.large", "RunInstances"): 0.0539,
      ("us-east-1", "ISP3AU", "m6g.large", "RunInstances"): 0.0328,
      ("eu-west-1", "CSP1NU", "m6g.large", "RunInstances"): 0.0602}
PLANS = {"CSP1NU": ("ComputeSavingsPlans", "1yr", "No Upfront", "ComputeSP:1yrNoUpfront"),
         "ISP3AU": ("EC2InstanceSavingsPlans", "3yr", "All Upfront", "EC2SP:m6g.3yrAllUpfront")}


def _product(region: str, instance_type: str, operation: str, tenancy: str = "Shared",
             capacity: str = "Used", license_model: str = "No License required") -> dict:
    location, prefix = LOCATIONS[region]
    system, software = OS[operation]
    kind = {"Shared": "BoxUsage", "Dedicated": "DedicatedUsage"}[tenancy]
    family = ("Compute Instance (bare metal)" if instance_type.endswith(".metal")
              else "Compute Instance")
    return {"Product Family": family, "serviceCode": "AmazonEC2", "Location": location,
            "Location Type": "AWS Region", "Instance Type": instance_type,
            "Current Generation": "Yes", "Instance Family": "General purpose", "vCPU": "2",
            "Physical Processor": "AWS Graviton2 Processor" if "g." in instance_type
            else "Intel Xeon Platinum 8175", "Memory": "8 GiB", "Storage": "EBS only",
            "Tenancy": tenancy, "Operating System": system, "License Model": license_model,
            "usageType": f"{prefix}{kind}:{instance_type}", "operation": operation,
            "CapacityStatus": capacity, "Pre Installed S/W": software, "Region Code": region}


def ec2_csv(region: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in (("FormatVersion", "v1.0"), ("Disclaimer", "This pricing list is for "
                "informational purposes only."), ("Publication Date", PUBLISHED),
                ("Version", VERSION), ("OfferCode", "AmazonEC2")):
        writer.writerow(row)
    writer.writerow(EC2_COLUMNS)
    sku = 0

    def row(product: dict, term: dict) -> None:
        writer.writerow([{**product, **term}.get(c, "") for c in EC2_COLUMNS])

    for (r, instance_type, operation), price in ON_DEMAND.items():
        if r != region:
            continue
        sku += 1
        term = {"SKU": f"SKU{sku:04d}", "OfferTermCode": "JRTCKXETXF", "TermType": "OnDemand",
                "Unit": "Hrs", "PricePerUnit": f"{price:.10f}", "Currency": "USD",
                "PriceDescription": f"${price} per On Demand {instance_type} Instance Hour"}
        row(_product(region, instance_type, operation), term)
        # what the reader must leave out: other tenancy, capacity status and license
        row(_product(region, instance_type, operation, tenancy="Dedicated"),
            {**term, "PricePerUnit": f"{price * 1.1:.10f}"})
        row(_product(region, instance_type, operation, capacity="UnusedCapacityReservation"),
            {**term, "PricePerUnit": "0.9"})
        row(_product(region, instance_type, operation,
                     license_model="Bring your own license"), {**term, "PricePerUnit": "0.01"})
        if (region, instance_type) in RESERVED and operation == "RunInstances":
            hourly, upfront = RESERVED[(region, instance_type)]
            ri = {"SKU": f"SKU{sku:04d}", "OfferTermCode": "HU7G6KETJZ", "TermType": "Reserved",
                  "Currency": "USD", "LeaseContractLength": "1yr",
                  "PurchaseOption": "Partial Upfront", "OfferingClass": "standard"}
            row(_product(region, instance_type, operation),
                {**ri, "Unit": "Quantity", "PricePerUnit": f"{upfront}",
                 "PriceDescription": "Upfront Fee"})
            row(_product(region, instance_type, operation),
                {**ri, "Unit": "Hrs", "PricePerUnit": f"{hourly:.10f}"})
    return out.getvalue()


def sp_json(region: str) -> str:
    location, prefix = LOCATIONS[region]
    products = [{"sku": sku, "productFamily": family, "serviceCode": "ComputeSavingsPlans",
                 "usageType": usage, "operation": "",
                 "attributes": {"purchaseOption": payment, "granularity": "hourly",
                                "instanceType": "m6g" if "EC2SP" in usage else "",
                                "locationType": "AWS Region",
                                "location": "Any" if family == "ComputeSavingsPlans"
                                else location, "purchaseTerm": term}}
                for sku, (family, term, payment, usage) in PLANS.items()]
    terms = []
    for sku, (_, term, payment, _) in PLANS.items():
        rates = [{"discountedSku": f"D{i}", "discountedUsageType": f"{prefix}BoxUsage:{t}",
                  "discountedOperation": op, "discountedServiceCode": "AmazonEC2",
                  "rateCode": f"{sku}.D{i}", "unit": "Hrs",
                  "discountedRate": {"price": f"{price}", "currency": "USD"},
                  "discountedRegionCode": region, "discountedInstanceType": t}
                 for i, ((r, s, t, op), price) in enumerate(SP.items()) if r == region and s == sku]
        # rates the reader must leave out: dedicated hosts and dedicated instances
        rates.append({"discountedSku": "H1", "discountedUsageType": f"{prefix}HostBoxUsage:m6g",
                      "discountedOperation": "RunInstances", "unit": "Hrs",
                      "discountedRate": {"price": "0.001", "currency": "USD"},
                      "discountedRegionCode": region, "discountedInstanceType": "m6g.large"})
        terms.append({"sku": sku, "description": f"{term} {payment}",
                      "effectiveDate": "2026-11-01T00:00:00Z",
                      "leaseContractLength": {"duration": int(term[0]), "unit": "year"},
                      "rates": rates})
    return json.dumps({"version": VERSION, "publicationDate": PUBLISHED, "regionCode": region,
                       "products": products, "terms": {"savingsPlan": terms}}, indent=1)


def write_tree(root: Path) -> Path:
    ec2_base, sp_base = "/offers/v1.0/aws/AmazonEC2", "/savingsPlan/v1.0/aws/AWSComputeSavingsPlan"
    files = {
        "/offers/v1.0/aws/index.json": {
            "formatVersion": "v1.0", "disclaimer": "For informational purposes only.",
            "publicationDate": PUBLISHED,
            "offers": {
                "AmazonEC2": {"offerCode": "AmazonEC2",
                              "versionIndexUrl": f"{ec2_base}/index.json",
                              "currentVersionUrl": f"{ec2_base}/current/index.json",
                              "currentRegionIndexUrl": f"{ec2_base}/current/region_index.json",
                              "savingsPlanVersionIndexUrl": f"{sp_base}/index.json"},
                "AWSComputeSavingsPlan": {
                    "offerCode": "AWSComputeSavingsPlan",
                    "versionIndexUrl": "/offers/v1.0/aws/AWSComputeSavingsPlan/index.json",
                    "currentVersionUrl":
                        "/offers/v1.0/aws/AWSComputeSavingsPlan/current/index.json",
                    "currentRegionIndexUrl":
                        "/offers/v1.0/aws/AWSComputeSavingsPlan/current/region_index.json"}}},
        f"{ec2_base}/current/region_index.json": {
            "formatVersion": "v1.0", "disclaimer": "", "publicationDate": PUBLISHED,
            "regions": {r: {"regionCode": r,
                            "currentVersionUrl": f"{ec2_base}/{VERSION}/{r}/index.json"}
                        for r in LOCATIONS}},
        "/offers/v1.0/aws/AWSComputeSavingsPlan/current/region_index.json": {
            "disclaimer": "", "publicationDate": PUBLISHED,
            "regions": [{"regionCode": r, "versionUrl": f"{sp_base}/{VERSION}/{r}/index.json"}
                        for r in LOCATIONS]},
    }
    for path, body in files.items():
        _write(root, path, json.dumps(body, indent=1))
    for region in LOCATIONS:
        _write(root, f"{ec2_base}/{VERSION}/{region}/index.csv", ec2_csv(region))
        _write(root, f"{sp_base}/{VERSION}/{region}/index.json", sp_json(region))
    return root


def _write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


@contextmanager
def serve(root: Path):
    """The tree over HTTP on 127.0.0.1 at a free port; yields the base URL."""
    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
