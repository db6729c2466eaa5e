"""A trimmed mirror of the AWS Price List Bulk API, in its documented layout, on 127.0.0.1.

Layout as the AWS Billing User Guide documents it ("Reading the price list files",
https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/bulk-api-reading-price-list-files.html):
- offers/v1.0/aws/index.json ("Reading the service index file"): formatVersion, disclaimer,
  publicationDate, "offers" keyed by offer code. The AmazonEC2 entry carries
  savingsPlanVersionIndexUrl (and, as the published file does, currentSavingsPlanIndexUrl);
  there is no Savings Plans offer entry.
- EC2's current/region_index.json ("Service Region index file for AWS services"): "regions"
  is an object, regionCode -> {regionCode, currentVersionUrl}.
- each region's EC2 file, CSV variant ("Reading the service price list file for an AWS
  service"): five metadata rows (FormatVersion, Disclaimer, Publication Date, Version,
  OfferCode), the column names in the sixth, one row per price dimension.
- /savingsPlan/v1.0/aws/AWSComputeSavingsPlan/current/index.json ("Service version index
  file for Savings Plan"): currentOfferVersionUrl -> current/region_index.json ("Service
  Region index file for Savings Plan"): "regions" is an array of {regionCode, versionUrl}.
- each region's Savings Plans file ("Reading the service price list file for a Savings
  Plan"): version, publicationDate, regionCode, products[], terms.savingsPlan[].
Every kind of row that is not the region's plain instance hour is mixed in, before and after
the row it could be mistaken for, and counted in DECOYS under the rule that sets it aside.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import Counter
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = "20261120000000"
PUBLISHED = "2026-11-20T00:00:00Z"
# region -> location, usage-type prefix, a Local Zone of it (None: none in the mirror)
LOCATIONS = {"us-east-1": ("US East (N. Virginia)", "", ("US East (Boston)", "USE1-BOS1-")),
             "eu-west-1": ("EU (Ireland)", "EU-", None)}
EC2_BASE = "/offers/v1.0/aws/AmazonEC2"
SP_BASE = "/savingsPlan/v1.0/aws/AWSComputeSavingsPlan"
# Column names as the published EC2 file spells them (many product columns this reader does
# not use are left out; the reader finds columns by name).
EC2_COLUMNS = ["SKU", "OfferTermCode", "RateCode", "TermType", "PriceDescription",
               "EffectiveDate", "StartingRange", "EndingRange", "Unit", "PricePerUnit",
               "Currency", "RelatedTo", "LeaseContractLength", "PurchaseOption", "OfferingClass",
               "Product Family", "serviceCode", "Location", "Location Type", "Instance Type",
               "Current Generation", "Instance Family", "vCPU", "Physical Processor", "Memory",
               "Storage", "Network Performance", "Processor Architecture", "Tenancy",
               "EBS Optimized", "Operating System", "License Model", "usageType", "operation",
               "AvailabilityZone", "CapacityStatus", "ClassicNetworkingSupport", "ECU",
               "Instance Capacity - xlarge", "MarketOption", "Normalization Size Factor",
               "Pre Installed S/W", "Processor Features", "Product Type", "Region Code",
               "serviceName", "VPCNetworkingSupport"]
# operation -> Operating System, Pre Installed S/W
OS = {"RunInstances": ("Linux", "NA"), "RunInstances:0010": ("RHEL", "NA"),
      "RunInstances:0004": ("Linux", "SQL Std"), "RunInstances:0002": ("Windows", "NA")}

# (region, type, operation) -> on-demand USD/h of the region's row
ON_DEMAND = {
    ("us-east-1", "m5.large", "RunInstances"): 0.096,
    ("us-east-1", "m5.large", "RunInstances:0010"): 0.1248,
    ("us-east-1", "m5.large", "RunInstances:0004"): 0.416,
    ("us-east-1", "m5.large", "RunInstances:0002"): 0.188,
    ("us-east-1", "m5.xlarge", "RunInstances"): 0.192,
    ("us-east-1", "m6g.large", "RunInstances"): 0.077,
    ("us-east-1", "m6g.large", "RunInstances:0010"): 0.1058,
    ("us-east-1", "m6g.xlarge", "RunInstances"): 0.154,
    ("us-east-1", "r6g.xlarge", "RunInstances"): 0.2016,
    ("us-east-1", "m5.metal", "RunInstances"): 4.608,
    ("us-east-1", "m6g.metal", "RunInstances"): 2.464,
    ("us-east-1", "i3en.xlarge", "RunInstances"): 0.452,
    ("us-east-1", "i4g.xlarge", "RunInstances"): 0.30888,
    ("us-east-1", "is4gen.xlarge", "RunInstances"): 0.5763,
    ("us-east-1", "im4gn.2xlarge", "RunInstances"): 0.72758,
    ("eu-west-1", "m5.large", "RunInstances"): 0.107,
    ("eu-west-1", "m5.xlarge", "RunInstances"): 0.214,
    ("eu-west-1", "m6g.large", "RunInstances"): 0.086,
    ("eu-west-1", "r6g.xlarge", "RunInstances"): 0.2256,
}
RI_TERMS = [(offering, lease, payment) for offering in ("standard", "convertible")
            for lease in ("1yr", "3yr")
            for payment in ("No Upfront", "Partial Upfront", "All Upfront")]
# Types with Reserved rows of every term (Linux); two rates the savings tests rely on.
RI_TYPES = [("us-east-1", "m5.large"), ("us-east-1", "m6g.large"), ("us-east-1", "m5.xlarge"),
            ("eu-west-1", "m6g.large")]
RI_FIXED = {("us-east-1", "m5.large", "standard", "1yr", "Partial Upfront"): (0.028, 245.0),
            ("us-east-1", "m6g.large", "standard", "1yr", "Partial Upfront"): (0.022, 196.0)}


def ri_fees(region: str, instance_type: str, offering: str, lease: str,
            payment: str) -> tuple[float, float]:
    """Hourly and upfront fee of one RI term: a discount off on-demand by term."""
    fixed = RI_FIXED.get((region, instance_type, offering, lease, payment))
    if fixed:
        return fixed
    years = int(lease[0])
    effective = ON_DEMAND[(region, instance_type, "RunInstances")] * \
        {("standard", 1): 0.62, ("standard", 3): 0.41, ("convertible", 1): 0.71,
         ("convertible", 3): 0.53}[(offering, years)]
    if payment == "No Upfront":
        return round(effective * 1.04, 4), 0.0
    if payment == "Partial Upfront":
        return round(effective / 2, 4), float(round(effective / 2 * 8760 * years))
    return 0.0, float(round(effective * 0.98 * 8760 * years))


def ri_rate(region: str, instance_type: str, offering: str, lease: str, payment: str) -> float:
    hourly, upfront = ri_fees(region, instance_type, offering, lease, payment)
    return hourly + upfront / (int(lease[0]) * 24 * 365)


# (region, plan sku, type, operation) -> USD/h
SP = {("us-east-1", "CSP1NU", "m5.large", "RunInstances"): 0.068,
      ("us-east-1", "CSP1NU", "m6g.large", "RunInstances"): 0.0539,
      ("us-east-1", "CSP1NU", "m6g.xlarge", "RunInstances"): 0.1078,
      ("us-east-1", "CSP3AU", "m6g.large", "RunInstances"): 0.0372,
      ("us-east-1", "ISP3AU", "m6g.large", "RunInstances"): 0.0328,
      ("eu-west-1", "CSP1NU", "m6g.large", "RunInstances"): 0.0602,
      ("eu-west-1", "CSP1NU", "m5.large", "RunInstances"): 0.0751}
PLANS = {"CSP1NU": ("ComputeSavingsPlans", "1yr", "No Upfront", "ComputeSP:1yrNoUpfront"),
         "CSP3AU": ("ComputeSavingsPlans", "3yr", "All Upfront", "ComputeSP:3yrAllUpfront"),
         "ISP3AU": ("EC2InstanceSavingsPlans", "3yr", "All Upfront", "EC2SP:m6g.3yrAllUpfront")}

# (region, "ec2" | "sp", rule) -> how many rows of that kind the mirror holds
DECOYS: Counter = Counter()


def _product(region: str, instance_type: str, operation: str) -> dict:
    location, prefix, _ = LOCATIONS[region]
    system, software = OS[operation]
    family = ("Compute Instance (bare metal)" if instance_type.endswith(".metal")
              else "Compute Instance")
    return {"Product Family": family, "serviceCode": "AmazonEC2", "Location": location,
            "Location Type": "AWS Region", "Instance Type": instance_type,
            "Current Generation": "Yes", "Instance Family": "General purpose", "vCPU": "2",
            "Physical Processor": "AWS Graviton2 Processor" if "g." in instance_type
            else "Intel Xeon Platinum 8175", "Memory": "8 GiB", "Storage": "EBS only",
            "Tenancy": "Shared", "Operating System": system,
            "License Model": "No License required", "usageType": f"{prefix}BoxUsage:"
            f"{instance_type}", "operation": operation, "CapacityStatus": "Used",
            "MarketOption": "OnDemand", "Pre Installed S/W": software, "Region Code": region,
            "serviceName": "Amazon Elastic Compute Cloud"}


def _decoys(region: str, product: dict) -> list[tuple[str, dict]]:
    """(rule that sets it aside, product) for every look-alike of a region's product."""
    _, prefix, zone = LOCATIONS[region]
    t = product["Instance Type"]
    out = []
    if zone:
        out.append(("location type", {**product, "Location": zone[0],
                                      "Location Type": "AWS Local Zone",
                                      "usageType": f"{zone[1]}BoxUsage:{t}",
                                      "Region Code": f"{region}-bos-1"}))
        out.append(("location type", {**product, "Location": "US East (Verizon) - Boston",
                                      "Location Type": "AWS Wavelength Zone",
                                      "usageType": f"USE1-WL1-BOS-WLZ1-BoxUsage:{t}",
                                      "Region Code": f"{region}-wl1-bos-wlz-1"}))
    out += [
        ("tenancy", {**product, "Tenancy": "Dedicated",
                     "usageType": f"{prefix}DedicatedUsage:{t}"}),
        ("tenancy", {**product, "Tenancy": "Host", "usageType": f"{prefix}HostBoxUsage:{t}"}),
        ("capacity status", {**product, "CapacityStatus": "AllocatedCapacityReservation",
                             "usageType": f"{prefix}Reservation:{t}"}),
        ("capacity status", {**product, "CapacityStatus": "UnusedCapacityReservation",
                             "usageType": f"{prefix}UnusedBox:{t}"}),
        ("market option", {**product, "MarketOption": "CapacityBlock"}),
        ("usage type", {**product, "usageType": f"{prefix}SpotUsage:{t}"}),
        ("operation", {**product, "operation": f"{product['operation']}:SV001"}),
        ("license model", {**product, "License Model": "Bring your own license"}),
        ("pre-installed software", {**product, "Pre Installed S/W": "SQL Web"}),
    ]
    return out


def ec2_csv(region: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in (("FormatVersion", "v1.0"), ("Disclaimer", "This pricing list is for "
                "informational purposes only. All prices are subject to the applicable AWS "
                "Customer Agreement."), ("Publication Date", PUBLISHED), ("Version", VERSION),
                ("OfferCode", "AmazonEC2")):
        writer.writerow(row)
    writer.writerow(EC2_COLUMNS)
    count = Counter()

    def row(product: dict, term: dict, rule: str | None = None) -> None:
        writer.writerow([{**product, **term}.get(c, "") for c in EC2_COLUMNS])
        if rule:
            count[rule] += 1

    # other products of the same file
    for family, usage in (("Storage", "EBS:VolumeUsage.gp3"),
                          ("Data Transfer", "DataTransfer-Out-Bytes"),
                          ("Dedicated Host", "HostUsage:m5")):
        row({"Product Family": family, "usageType": usage, "Location Type": "AWS Region",
             "Region Code": region}, {"SKU": f"X{len(family)}", "TermType": "OnDemand",
                                      "Unit": "Hrs", "PricePerUnit": "0.0800000000"},
            "product family")
    for n, ((r, instance_type, operation), price) in enumerate(ON_DEMAND.items()):
        if r != region:
            continue
        product = _product(region, instance_type, operation)
        on_demand = {"SKU": f"SKU{n:04d}", "OfferTermCode": "JRTCKXETXF",
                     "RateCode": f"SKU{n:04d}.JRTCKXETXF.6YS6EN2CT7", "TermType": "OnDemand",
                     "Unit": "Hrs", "PricePerUnit": f"{price:.10f}", "Currency": "USD",
                     "EffectiveDate": "2026-11-01",
                     "PriceDescription": f"${price} per On Demand {instance_type} Instance Hour"}
        decoys = _decoys(region, product)
        # look-alikes before and after the region's row: neither first nor last may win
        for k, (rule, decoy) in enumerate(decoys):
            if k % 2 == 0:
                row(decoy, {**on_demand, "PricePerUnit": f"{price * (1.3 + k / 10):.10f}"}, rule)
        row(product, on_demand)
        for k, (rule, decoy) in enumerate(decoys):
            if k % 2 == 1:
                row(decoy, {**on_demand, "PricePerUnit": f"{price * (0.4 + k / 10):.10f}"}, rule)
        if (region, instance_type) in RI_TYPES and operation == "RunInstances":
            for offering, lease, payment in RI_TERMS:
                hourly, upfront = ri_fees(region, instance_type, offering, lease, payment)
                ri = {"SKU": on_demand["SKU"], "OfferTermCode": f"RI{offering[0]}{lease}"
                      f"{payment[0]}", "TermType": "Reserved", "Currency": "USD",
                      "LeaseContractLength": lease, "PurchaseOption": payment,
                      "OfferingClass": offering, "EffectiveDate": "2026-11-01"}
                for rule, decoy in decoys[:2]:  # the same term in a zone or dedicated
                    row(decoy, {**ri, "Unit": "Hrs", "PricePerUnit": f"{hourly + 0.5:.10f}"},
                        rule)
                if payment != "No Upfront":
                    row(product, {**ri, "Unit": "Quantity", "PricePerUnit": f"{upfront:.0f}",
                                  "PriceDescription": "Upfront Fee"})
                row(product, {**ri, "Unit": "Hrs", "PricePerUnit": f"{hourly:.10f}"})
    for rule, n in count.items():
        DECOYS[(region, "ec2", rule)] = n
    return out.getvalue()


def sp_json(region: str) -> str:
    location, prefix, zone = LOCATIONS[region]
    products = [{"sku": sku, "productFamily": family, "serviceCode": "ComputeSavingsPlans",
                 "usageType": usage, "operation": "",
                 "attributes": {"purchaseOption": payment, "granularity": "hourly",
                                "instanceType": "m6g" if "EC2SP" in usage else "",
                                "locationType": "AWS Region",
                                "location": "Any" if family == "ComputeSavingsPlans"
                                else location, "purchaseTerm": term}}
                for sku, (family, term, payment, usage) in PLANS.items()]
    count = Counter()
    terms = []
    for sku, (_, term, payment, _) in PLANS.items():
        rates = []

        def rate(usage_type, operation, price, instance_type, service="AmazonEC2", rule=None,
                 rates=rates, sku=sku):
            rates.append({"discountedSku": f"D{len(rates)}", "discountedUsageType": usage_type,
                          "discountedOperation": operation, "discountedServiceCode": service,
                          "rateCode": f"{sku}.D{len(rates)}", "unit": "Hrs",
                          "discountedRate": {"price": f"{price}", "currency": "USD"},
                          "discountedRegionCode": region,
                          "discountedInstanceType": instance_type})
            if rule:
                count[rule] += 1

        for (r, s, t, op), price in SP.items():
            if r != region or s != sku:
                continue
            if zone:  # a Local Zone's rate for the same type, before and after
                rate(f"{zone[1]}BoxUsage:{t}", op, price * 1.2, t, rule="usage type")
            rate(f"{prefix}BoxUsage:{t}", op, price, t)
            rate(f"{prefix}HostBoxUsage:{t.split('.')[0]}", op, 0.001, t, rule="usage type")
            rate(f"{prefix}DedicatedUsage:{t}", op, price * 1.1, t, rule="usage type")
            if zone:
                rate(f"{zone[1]}BoxUsage:{t}", op, price * 0.9, t, rule="usage type")
        if sku.startswith("CSP"):  # Compute Savings Plans also cover Fargate and Lambda
            rate(f"{prefix}Fargate-vCPU-Hours:perCPU", "FargateTask", 0.03, "",
                 service="AmazonECS", rule="service")
            rate(f"{prefix}Lambda-GB-Second", "Invoke", 0.0000138, "", service="AWSLambda",
                 rule="service")
        terms.append({"sku": sku, "description": f"{term} {payment}",
                      "effectiveDate": "2026-11-01T00:00:00Z",
                      "leaseContractLength": {"duration": int(term[0]), "unit": "year"},
                      "rates": rates})
    for rule, n in count.items():
        DECOYS[(region, "sp", rule)] = n
    return json.dumps({"version": VERSION, "publicationDate": PUBLISHED, "regionCode": region,
                       "products": products, "terms": {"savingsPlan": terms}}, indent=1)


def index_files(current_sp_index: bool = True) -> dict[str, dict]:
    ec2_entry = {"offerCode": "AmazonEC2", "versionIndexUrl": f"{EC2_BASE}/index.json",
                 "currentVersionUrl": f"{EC2_BASE}/current/index.json",
                 "currentRegionIndexUrl": f"{EC2_BASE}/current/region_index.json",
                 "savingsPlanVersionIndexUrl": f"{SP_BASE}/current/index.json"}
    if current_sp_index:
        ec2_entry["currentSavingsPlanIndexUrl"] = f"{SP_BASE}/current/region_index.json"
    s3 = "/offers/v1.0/aws/AmazonS3"
    return {
        "/offers/v1.0/aws/index.json": {
            "formatVersion": "v1.0", "disclaimer": "This pricing list is for informational "
            "purposes only.", "publicationDate": PUBLISHED,
            "offers": {"AmazonEC2": ec2_entry,
                       "AmazonS3": {"offerCode": "AmazonS3",
                                    "versionIndexUrl": f"{s3}/index.json",
                                    "currentVersionUrl": f"{s3}/current/index.json",
                                    "currentRegionIndexUrl": f"{s3}/current/region_index.json"}}},
        f"{EC2_BASE}/current/region_index.json": {
            "formatVersion": "v1.0", "disclaimer": "", "publicationDate": PUBLISHED,
            "regions": {r: {"regionCode": r,
                            "currentVersionUrl": f"{EC2_BASE}/{VERSION}/{r}/index.json"}
                        for r in LOCATIONS}},
        f"{SP_BASE}/current/index.json": {
            "disclaimer": "", "publicationDate": PUBLISHED,
            "currentOfferVersionUrl": f"{SP_BASE}/current/region_index.json",
            "versions": [{"publicationDate": PUBLISHED,
                          "offerVersionUrl": f"{SP_BASE}/{VERSION}/region_index.json"}]},
        f"{SP_BASE}/current/region_index.json": {
            "disclaimer": "", "publicationDate": PUBLISHED,
            "regions": [{"regionCode": r, "versionUrl": f"{SP_BASE}/{VERSION}/{r}/index.json"}
                        for r in LOCATIONS]},
    }


def ec2_path(region: str) -> str:
    return f"{EC2_BASE}/{VERSION}/{region}/index.csv"


def sp_path(region: str) -> str:
    return f"{SP_BASE}/{VERSION}/{region}/index.json"


def write_tree(root: Path, current_sp_index: bool = True) -> Path:
    for path, body in index_files(current_sp_index).items():
        write(root, path, json.dumps(body, indent=1))
    for region in LOCATIONS:
        write(root, ec2_path(region), ec2_csv(region))
        write(root, sp_path(region), sp_json(region))
    return root


def write(root: Path, path: str, text: str | bytes) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8")


@contextmanager
def serve(root: Path, drop: tuple[str, ...] = ()):
    """The tree over HTTP on 127.0.0.1 at a free port; yields the base URL. Paths in drop
    announce their whole length, send half and close the connection."""
    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            if self.path not in drop:
                return super().do_GET()
            body = (root / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
