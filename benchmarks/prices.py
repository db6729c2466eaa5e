"""12. `nitrometer prices update` on a large region file, and the agent's price lookup.

A region's EC2 price list file is generated in the documented CSV layout (five metadata rows,
the column names, one quoted row per price dimension, pricing columns then product columns;
devkit.offers cites the AWS pages) with what makes real files large: Local and
Wavelength Zones, Dedicated and Host tenancy, capacity reservations, Reserved rows of every
term. It is served on 127.0.0.1 with the mirror's indexes, and `prices update` runs in a
child whose peak RSS comes from getrusage(RUSAGE_CHILDREN) of a fresh intermediate process.
Then the agent's lookup of its own rate runs against the small mirror's cache and against the
large one, interleaved: its peak RSS should not depend on the cache.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks.common import Context, Section, fmt_mb, measure_command, median

NAME = "prices"
TITLE = "12. Price list update on a large region file"
RSS_TARGET = 150 * 10**6
LOOKUP = ("from nitrometer.prices.instance import instance_pricing; import sys; "
          "print(instance_pricing('m5.large', 'us-east-1', sys.argv[1]))")
FAMILIES = ("m5", "m5d", "m6i", "m6a", "m7i", "c5", "c5d", "c6i", "c7i", "r5", "r6i", "r7i",
            "m6g", "m7g", "c6g", "c7g", "r6g", "r7g", "i3", "i4i", "t3", "t4g", "x2gd", "z1d",
            "m5n", "m5zn", "m6in", "m7a", "c5n", "c6a", "c6in", "c7a", "r5a", "r5b", "r5n",
            "r6a", "r7a", "i3en", "i4g", "im4gn", "is4gen", "d3", "g5", "p4d", "inf2",
            "x2iedn", "m8g", "c8g")
SIZES = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
         "24xlarge", "metal")
OPERATIONS = (("RunInstances", "Linux", "NA"), ("RunInstances:0010", "RHEL", "NA"),
              ("RunInstances:0002", "Windows", "NA"), ("RunInstances:0006", "Windows", "SQL Std"),
              ("RunInstances:0004", "Linux", "SQL Std"), ("RunInstances:000g", "SUSE", "NA"),
              ("RunInstances:1010", "RHEL", "NA"), ("RunInstances:0102", "Windows", "SQL Ent"),
              ("RunInstances:0202", "Windows", "SQL Web"), ("RunInstances:0g00", "Ubuntu Pro",
                                                            "NA"))
ZONES = [("AWS Region", "US East (N. Virginia)", "")] + \
    [("AWS Local Zone", f"US East ({city})", f"USE1-{code}-")
     for city, code in (("Boston", "BOS1"), ("Miami", "MIA1"), ("Dallas", "DFW1"),
                        ("Houston", "IAH1"), ("Chicago", "CHI1"), ("Atlanta", "ATL1"))] + \
    [("AWS Wavelength Zone", "US East (Verizon) - Boston", "USE1-WL1-BOS-WLZ1-")]
PLACES = (("Shared", "Used", "BoxUsage"), ("Dedicated", "Used", "DedicatedUsage"),
          ("Host", "Used", "HostBoxUsage"),
          ("Shared", "AllocatedCapacityReservation", "Reservation"),
          ("Shared", "UnusedCapacityReservation", "UnusedBox"))
RI_TERMS = [(c, lease, p) for c in ("standard", "convertible") for lease in ("1yr", "3yr")
            for p in ("No Upfront", "Partial Upfront", "All Upfront")]


def _kib(path: Path) -> str:
    return f"{path.stat().st_size / 1024:,.0f} KiB"


def _q(values) -> str:
    return ",".join(f'"{v}"' for v in values)


def write_region_file(path: Path, target_bytes: int) -> int:
    """Rows until the file reaches target_bytes; returns the number of rows."""
    from devkit import offers

    columns = offers.EC2_COLUMNS + [f"Instance Capacity - {s}" for s in SIZES] + \
        [f"Feature {n}" for n in range(30)]  # real files have about 90 columns
    pricing = columns[:columns.index("Product Family")]
    product_columns = columns[len(pricing):]
    rows, sku = 0, 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        for name, value in (("FormatVersion", "v1.0"), ("Disclaimer", "This pricing list is "
                            "for informational purposes only."),
                            ("Publication Date", offers.PUBLISHED), ("Version", offers.VERSION),
                            ("OfferCode", "AmazonEC2")):
            f.write(_q((name, value)) + "\n")
        f.write(_q(columns) + "\n")
        while f.tell() < target_bytes:
            for family in FAMILIES:
                for size in SIZES:
                    t = f"{family}.{size}"
                    for op, system, software in OPERATIONS:
                        for location_type, location, prefix in ZONES:
                            for tenancy, capacity, usage in PLACES:
                                sku += 1
                                product = {
                                    "Product Family": "Compute Instance", "serviceCode":
                                    "AmazonEC2", "Location": location, "Location Type":
                                    location_type, "Instance Type": t, "Current Generation":
                                    "Yes", "Instance Family": "General purpose", "vCPU": "4",
                                    "Physical Processor": "Intel Xeon Platinum 8259CL",
                                    "Memory": "16 GiB", "Storage": "EBS only", "Tenancy":
                                    tenancy, "Operating System": system, "License Model":
                                    "No License required", "usageType": f"{prefix}{usage}:{t}",
                                    "operation": op, "CapacityStatus": capacity, "MarketOption":
                                    "OnDemand", "Pre Installed S/W": software,
                                    "Region Code": "us-east-1", "serviceName":
                                    "Amazon Elastic Compute Cloud", **{
                                        c: "Yes" for c in product_columns[-30:]}}
                                tail = _q(product.get(c, "") for c in product_columns)
                                code = f"S{sku:010d}"
                                f.write(_q([code, "JRTCKXETXF", f"{code}.JRTCKXETXF.6YS6EN2CT7",
                                            "OnDemand", f"$0.1 per On Demand {t} Instance Hour",
                                            "2026-11-01", "0", "Inf", "Hrs", "0.1000000000",
                                            "USD", "", "", "", ""]) + "," + tail + "\n")
                                rows += 1
                                if capacity != "Used" or tenancy == "Host":
                                    continue
                                for offering, lease, payment in RI_TERMS:
                                    term = f"{code}.R{offering[0]}{lease}{payment[0]}"
                                    for unit, price in (("Quantity", "350"),
                                                        ("Hrs", "0.0400000000")):
                                        f.write(_q([code, term[-8:], f"{term}.{unit}",
                                                    "Reserved", "Upfront Fee" if unit ==
                                                    "Quantity" else "hourly fee", "2026-11-01",
                                                    "0", "Inf", unit, price, "USD", "", lease,
                                                    payment, offering]) + "," + tail + "\n")
                                        rows += 1
                            if f.tell() >= target_bytes:
                                return rows
    return rows


def region_file(ctx: Context, target_bytes: int) -> tuple[Path, int]:
    path = ctx.cache / f"prices-us-east-1-{target_bytes >> 20}MiB.csv"
    meta = path.with_suffix(".rows")
    if not path.exists() or not meta.exists():
        ctx.log(f"prices: generating a {target_bytes >> 20} MiB region file (kept in "
                f"{ctx.cache})")
        tmp = path.with_suffix(".tmp")
        rows = write_region_file(tmp, target_bytes)
        tmp.replace(path)
        meta.write_text(str(rows))
    return path, int(meta.read_text())


def measure(cmd: list[str]) -> dict:
    return measure_command(cmd, timeout=3600)


def run(ctx: Context) -> Section:
    from devkit import offers

    section = Section(TITLE)
    target_bytes = (64 if ctx.quick else 1024) << 20
    repeats = 1 if ctx.quick else 3
    big, rows = region_file(ctx, target_bytes)
    work = Path(tempfile.mkdtemp(dir=ctx.workdir))
    small_root = offers.write_tree(work / "small")
    large_root = offers.write_tree(work / "large")
    csv_path = large_root / offers.ec2_path("us-east-1").lstrip("/")
    csv_path.unlink()
    csv_path.symlink_to(big)
    caches = {"small": work / "cache-small", "large": work / "cache-large"}
    updates = []
    with offers.serve(small_root) as small_url, offers.serve(large_root) as large_url:
        measure([sys.executable, "-m", "nitrometer", "prices", "update", "--region",
                 "us-east-1", "--base-url", small_url, "--cache-dir", str(caches["small"]),
                 "--no-progress"])
        for n in range(repeats):
            result = measure([sys.executable, "-m", "nitrometer", "prices", "update",
                              "--region", "us-east-1", "--base-url", large_url, "--cache-dir",
                              str(caches["large"]), "--no-progress"])
            updates.append(result)
            ctx.log(f"prices update {n + 1}/{repeats}: {result['wall']:.0f} s, "
                    f"{fmt_mb(result['rss'])}")
    rss = max(r["rss"] for r in updates)
    wall = median([r["wall"] for r in updates])
    cache_file = caches["large"] / "prices" / "us-east-1.sqlite"
    section.target(f"`prices update` peak RSS, {big.stat().st_size / 2**20:,.0f} MiB region "
                   "file", "< 150 MB", f"{rss / 1e6:.0f} MB largest", rss < RSS_TARGET,
                   f"{repeats} runs")
    lookups: dict[str, list[int]] = {"small": [], "large": []}
    for _ in range(5 if not ctx.quick else 2):
        for name, cache in caches.items():  # interleaved
            result = measure([sys.executable, "-c", LOOKUP, str(cache)])
            lookups[name].append(result["rss"])
    ratio = median(lookups["large"]) / median(lookups["small"])
    section.target("agent price lookup peak RSS, large cache / small cache", "about 1 (< 1.1)",
                   f"{ratio:.2f}", ratio < 1.1, f"{len(lookups['large'])} lookups each")
    section.add(
        "`nitrometer prices update --region us-east-1` against the mirror on 127.0.0.1 whose "
        f"us-east-1 file is the generated one: {rows:,} rows in "
        f"{big.stat().st_size / 2**20:,.0f} MiB, most of them rows the rules set aside "
        "(Local and Wavelength Zones, Dedicated and Host tenancy, capacity reservations). "
        "Wall time is the median of the runs, peak RSS the largest. The agent's lookup is "
        "`instance_pricing` of its own type in a fresh interpreter, against the small "
        "mirror's cache and the large one, alternately. What the last update said:",
        "",
        "```",
        *updates[-1]["out"].strip().splitlines()[:2],
        "```",
        "",
    )
    section.table(["what", "runs", "wall (median)", "peak RSS", "cache file"],
                  [["prices update", repeats, f"{wall:.0f} s", fmt_mb(rss),
                    _kib(cache_file)],
                   ["agent lookup, small cache", len(lookups["small"]), "",
                    fmt_mb(median(lookups["small"])),
                    _kib(caches["small"] / "prices" / "us-east-1.sqlite")],
                   ["agent lookup, large cache", len(lookups["large"]), "",
                    fmt_mb(median(lookups["large"])), _kib(cache_file)]])
    return section
