"""Synthetic CUR 2.0 Parquet (static columns plus the `product` map) for tests and benchmarks.

Each line is drawn from a template; a template says what the line is (type, region, line
item type, operating system, purchase option, the unused part of a fee) and which exclusion
reason the model should give it, so tests can count expected reasons and unused fees without
running the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Template:
    instance_type: str
    expected_reason: str  # what the model must call it ("eligible" or a REASONS entry)
    line_type: str = "Usage"
    region: str = "us-east-1"
    operating_system: str = "Linux"
    operation: str = "RunInstances"
    usage_kind: str = "BoxUsage"
    offering_type: str = ""  # savings_plan_offering_type of SP-covered lines
    # what was bought: the RI's or the Savings Plan's term and payment option, the RI's class
    lease: str = ""
    payment: str = ""
    ri_class: str = ""
    usage_amount: float | None = None  # a fixed usage amount (e.g. a bad, negative one)
    product_code: str = "AmazonEC2"
    rate: float = 0.1  # unblended USD per hour
    normalization_factor: float = 4.0
    weight: float = 1.0
    # RIFee lines: the reservation's unused amortized upfront and recurring fee, per line
    ri_unused_upfront: float = 0.0
    ri_unused_recurring: float = 0.0
    # SavingsPlanRecurringFee lines: commitment to date and the part used, per line
    sp_commitment: float = 0.0
    sp_used_commitment: float = 0.0

    @property
    def unused_fee(self) -> float:
        """What the line adds to amortized cost."""
        return (self.ri_unused_upfront + self.ri_unused_recurring
                + self.sp_commitment - self.sp_used_commitment)


DEFAULT_TEMPLATES = (
    Template("m5.large", "eligible", rate=0.096, weight=20),
    Template("c5.xlarge", "eligible", rate=0.17, normalization_factor=8, weight=15),
    Template("r5.2xlarge", "eligible", rate=0.504, normalization_factor=16, weight=10),
    Template("m6i.large", "eligible", line_type="SavingsPlanCoveredUsage",
             offering_type="ComputeSavingsPlans", lease="1yr", payment="No Upfront",
             rate=0.096, weight=5),
    Template("t3.medium", "eligible", rate=0.0416, normalization_factor=2, weight=10),
    Template("m6g.large", "already Graviton", rate=0.077, weight=10),
    Template("m5.large", "Windows", operating_system="Windows", operation="RunInstances:0002",
             rate=0.188, weight=5),
    Template("c5.large", "Spot", usage_kind="SpotUsage", operation="RunInstances:SV001",
             rate=0.035, weight=5),
    Template("r5.large", "RI-covered", line_type="DiscountedUsage", lease="1yr",
             payment="Partial Upfront", ri_class="standard", rate=0.0, weight=5),
    # unblended cost is the whole fee; amortized cost counts only the unused part
    Template("r5.large", "RI-covered", line_type="RIFee", usage_kind="HeavyUsage", rate=0.05,
             ri_unused_upfront=0.5, ri_unused_recurring=0.25, weight=0.5),
    Template("", "unused Savings Plan commitment", line_type="SavingsPlanRecurringFee",
             product_code="ComputeSavingsPlans", usage_kind="ComputeSP:1yrNoUpfront",
             operation="", rate=10.0, sp_commitment=10.0, sp_used_commitment=7.5,
             weight=0.5),
    Template("c6i.large", "instance-SP-covered", line_type="SavingsPlanCoveredUsage",
             offering_type="EC2InstanceSavingsPlans", lease="3yr", payment="All Upfront",
             rate=0.085, weight=5),
    Template("m5.large", "invalid lines", usage_amount=-720.0, rate=0.096, weight=0.5),
    Template("x9q.large", "unknown instance type", weight=1),
    Template("d3.xlarge", "no Graviton equivalent", rate=0.499, normalization_factor=8,
             weight=2),
    Template("m5.large", "no price", region="eu-central-1", rate=0.115, weight=2),
    # billed below the Graviton rate (a deep private discount): moving would cost more
    Template("m5.xlarge", "stay: Graviton costs more", rate=0.05, normalization_factor=8,
             weight=1),
    Template("", "", product_code="AmazonS3", usage_kind="TimedStorage-ByteHrs", weight=5),
)
# The other keys of an EC2 line's product map in a CUR 2.0 export ("product" column, AWS Data
# Exports table dictionary, docs.aws.amazon.com/cur/latest/userguide/table-dictionary-cur2-
# product.html): about 20 a line, as AWS writes them.
AWS_EC2_PRODUCT = {
    "availability_zone": "", "capacitystatus": "Used", "clock_speed": "3.1 GHz",
    "current_generation": "Yes", "ecu": "10", "enhanced_networking_supported": "Yes",
    "instance_family": "General purpose", "licensing_model": "No License required",
    "location": "US East (N. Virginia)", "location_type": "AWS Region",
    "marketoption": "OnDemand", "memory": "8 GiB", "network_performance": "Up to 10 Gigabit",
    "pre_installed_sw": "NA", "product_family": "Compute Instance",
    "servicecode": "AmazonEC2", "storage": "EBS only", "tenancy": "Shared", "vcpu": "2",
}
REGION_PREFIX = {"us-east-1": "", "eu-central-1": "EUC1-", "us-west-2": "USW2-"}


def _usage_type(t: Template) -> str:
    if t.product_code != "AmazonEC2":
        return t.usage_kind
    return f"{REGION_PREFIX.get(t.region, 'XX-')}{t.usage_kind}:{t.instance_type}"


def _product_values(t: Template, product_keys: str) -> list[tuple[str, str]]:
    # CUR 2.0 keeps region and OS only in the product map.
    pairs = [("region", t.region), ("operating_system", t.operating_system),
             ("instance_type_family", t.instance_type.split(".")[0])]
    if product_keys == "aws":
        family = t.instance_type.split(".")[0]
        graviton = family[-1:] == "g" or family[-2:-1] == "g"
        pairs += [(key, value) for key, value in AWS_EC2_PRODUCT.items()]
        pairs += [("physical_processor", "AWS Graviton2 Processor" if graviton
                   else "Intel Xeon Platinum 8175"),
                  ("processor_architecture", "64-bit" if not graviton else "arm64"),
                  ("usagetype", _usage_type(t)), ("operation", t.operation),
                  ("region_code", t.region)]
    return pairs


def _product_map(templates, picks: np.ndarray, product_keys: str) -> pa.MapArray:
    """Each line's product map: its template's keys and values, taken without a Python loop."""
    per_template = [_product_values(t, product_keys) for t in templates]
    width = len(per_template[0])
    keys = pa.array([k for pairs in per_template for k, _ in pairs])
    values = pa.array([v for pairs in per_template for _, v in pairs])
    index = (picks[:, None] * width + np.arange(width)).ravel()
    offsets = np.arange(0, width * len(picks) + 1, width, dtype=np.int32)
    return pa.MapArray.from_arrays(pa.array(offsets), keys.take(pa.array(index)),
                                   values.take(pa.array(index)))


def synthetic_batch(templates, picks: np.ndarray, rng: np.random.Generator,
                    first_id: int, start: np.datetime64,
                    product_keys: str = "minimal") -> pa.RecordBatch:
    """One batch of lines; picks[i] is the template of line i."""
    n = len(picks)
    take = lambda values, kind=None: pa.array(values, kind).take(pa.array(picks))  # noqa: E731
    hours = rng.uniform(0.25, 1.0, n).round(6)
    fixed = np.array([np.nan if t.usage_amount is None else t.usage_amount
                      for t in templates])[picks]
    hours = np.where(np.isnan(fixed), hours, fixed)
    rate = np.array([t.rate for t in templates])[picks]
    factor = np.array([t.normalization_factor for t in templates])[picks]
    ec2 = np.array([t.product_code == "AmazonEC2" for t in templates])[picks]
    line_type = np.array([t.line_type for t in templates])[picks]
    cost = (hours * rate).round(8)
    ri_cost = np.where(line_type == "DiscountedUsage", (hours * 0.06).round(8), 0.0)
    sp_cost = np.where(line_type == "SavingsPlanCoveredUsage", (cost * 0.7).round(8), 0.0)
    per_line = lambda name: np.array([getattr(t, name) for t in templates])[picks]  # noqa: E731
    product = _product_map(templates, picks, product_keys)
    day = rng.integers(0, 90, n).astype("timedelta64[D]")
    return pa.RecordBatch.from_pydict({
        "identity_line_item_id": pa.array([f"line-{first_id + i}" for i in range(n)]),
        "line_item_line_item_type": take([t.line_type for t in templates]),
        "line_item_product_code": take([t.product_code for t in templates]),
        "line_item_usage_type": take([_usage_type(t) for t in templates]),
        "line_item_operation": take([t.operation for t in templates]),
        "line_item_usage_start_date": pa.array((start + day).astype("datetime64[ms]")),
        "line_item_usage_amount": pa.array(hours),
        "line_item_normalization_factor": pa.array(np.where(ec2, factor, 0.0)),
        "line_item_normalized_usage_amount": pa.array(np.where(ec2, hours * factor, 0.0)),
        "line_item_unblended_rate": pa.array(rate),
        "line_item_unblended_cost": pa.array(cost),
        "reservation_effective_cost": pa.array(ri_cost),
        "savings_plan_savings_plan_effective_cost": pa.array(sp_cost),
        "reservation_unused_amortized_upfront_fee_for_billing_period": pa.array(
            per_line("ri_unused_upfront")),
        "reservation_unused_recurring_fee": pa.array(per_line("ri_unused_recurring")),
        "savings_plan_total_commitment_to_date": pa.array(per_line("sp_commitment")),
        "savings_plan_used_commitment": pa.array(per_line("sp_used_commitment")),
        "savings_plan_offering_type": take([t.offering_type or None for t in templates],
                                           pa.string()),
        "savings_plan_purchase_term": take(
            [t.lease if t.offering_type else None for t in templates], pa.string()),
        "savings_plan_payment_option": take(
            [t.payment if t.offering_type else None for t in templates], pa.string()),
        "pricing_lease_contract_length": take(
            [None if t.offering_type else t.lease or None for t in templates], pa.string()),
        "pricing_purchase_option": take(
            [None if t.offering_type else t.payment or None for t in templates], pa.string()),
        "pricing_offering_class": take([t.ri_class or None for t in templates], pa.string()),
        "product_instance_type": take([t.instance_type or None for t in templates],
                                      pa.string()),
        "product": product,
    })


def write_synthetic_cur(path: str | Path, lines: int, templates=DEFAULT_TEMPLATES,
                        seed: int = 0, batch_lines: int = 500_000,
                        product_keys: str = "minimal") -> dict[int, int]:
    """Write `lines` lines to a CUR 2.0 Parquet file; returns the line count per template.

    product_keys: "minimal" (the three keys the model reads) or "aws" (about 20 keys a line,
    as AWS writes an EC2 line's map)."""
    rng = np.random.default_rng(seed)
    weights = np.array([t.weight for t in templates], dtype=float)
    weights /= weights.sum()
    counts = np.zeros(len(templates), dtype=np.int64)
    start = np.datetime64("2026-01-01")
    writer = None
    try:
        for first in range(0, lines, batch_lines):
            n = min(batch_lines, lines - first)
            picks = rng.choice(len(templates), size=n, p=weights)
            counts += np.bincount(picks, minlength=len(templates))
            batch = synthetic_batch(templates, picks, rng, first, start, product_keys)
            if writer is None:
                writer = pq.ParquetWriter(str(path), batch.schema, compression="snappy")
            writer.write_batch(batch, row_group_size=batch_lines)
    finally:
        if writer is not None:
            writer.close()
    return {i: int(c) for i, c in enumerate(counts)}
