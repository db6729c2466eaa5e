"""Effort labels as the Graviton Savings Dashboard's SQL defines them.

In `dashboards/graviton-savings-dashboard/graviton_savings_dashboard.yaml` of
aws-solutions-library-samples/cloud-intelligence-dashboards-framework (commit 8de0d7d3,
view graviton_ec2_view), each line's ineligibility_reason is, in order: Already Graviton,
Windows Usage, Reserved Instance Covered Usage, Spot Usage, "No equivalent graviton
instance" (no default Graviton price), Instance Savings Plan Covered Usage, else Eligible;
and graviton_instance_exists is 'Available' only when the line joins a graviton_mapping row
(a price list row of the source type for the line's location, operation, term and payment)
whose default Graviton type is not empty. In `graviton_savings_dashboard-definition.yaml`,
"Savings Implementation Effort" is: Already Graviton; else "Excluded from Savings
Calculations" when graviton_instance_exists = '*Unavailable' or the OS is Windows; else
"Requires Additional Planning" for RI-, Spot- and Instance-SP-covered usage; else
"Typically Easy" (which includes "No equivalent graviton instance").
"""

from __future__ import annotations

import pytest

from nitrometer.prices.cache import INSTANCE_SP, RESERVED, SAVINGS_PLAN, RateKey, write_region
from nitrometer.savings.model import EASY, EXCLUDED, GRAVITON, PLANNING, run_model
from nitrometer.savings.reference import Reference
from nitrometer.savings.usage import usage_frame

HOURS = 720.0
SQL_STANDARD_LINUX = "RunInstances:0004"  # EC2 usage operation of SQL Server Standard on Linux
# Test rates in USD per hour (the shape of the price list, not today's prices).
RATES = {
    RateKey("m5.large"): 0.096, RateKey("m5.large", SQL_STANDARD_LINUX): 0.416,
    RateKey("m6g.large"): 0.077, RateKey("m6g.xlarge"): 0.154,
    RateKey("c5.24xlarge"): 4.08, RateKey("c6g.large"): 0.068,
    RateKey("c5.24xlarge", "RunInstances", RESERVED, "standard", "1yr", "No Upfront"): 2.57,
    RateKey("c5.24xlarge", "RunInstances", SAVINGS_PLAN, INSTANCE_SP, "1yr",
            "No Upfront"): 2.4,
    RateKey("m5.metal"): 4.608, RateKey("m6g.metal"): 2.464,
    RateKey("i7ie.xlarge"): 0.5856, RateKey("i8ge.xlarge"): 0.4677,
    RateKey("d3.xlarge"): 0.499, RateKey("m6g.2xlarge"): 0.308,
}
CASES = {  # name: (instance type, usage fields, region, expected reason, expected effort)
    # Spot lines carry RunInstances:SV... operations, which no price list row has
    "spot": ("m5.large", {"category": "spot", "operation": "RunInstances:SV001"},
             "us-east-1", "Spot", EXCLUDED),
    # SQL Server on Linux is listed for m5.large, but m6g.large has no row for its
    # operation: "No equivalent graviton instance", yet Available
    "sql_server_on_linux": ("m5.large", {"operation": SQL_STANDARD_LINUX}, "us-east-1",
                            "no Graviton equivalent", EASY),
    # c6g has no 24xlarge: the default type c6g.24xlarge is named but has no price
    "size_without_equivalent": ("c5.24xlarge", {}, "us-east-1", "no Graviton equivalent",
                                EASY),
    "ri_size_without_equivalent": ("c5.24xlarge", {"category": "ri", "lease": "1yr",
                                                   "payment": "No Upfront",
                                                   "offering": "standard"},
                                   "us-east-1", "RI-covered", PLANNING),
    # the dashboard's reason order puts "No equivalent" before Instance SP coverage
    "instance_sp_size_without_equivalent": (
        "c5.24xlarge", {"category": "instance_sp", "lease": "1yr", "payment": "No Upfront",
                        "offering": "EC2InstanceSavingsPlans"},
        "us-east-1", "no Graviton equivalent", EASY),
    "metal": ("m5.metal", {}, "us-east-1", "eligible", EASY),
    "new_family": ("i7ie.xlarge", {}, "us-east-1", "eligible", EASY),
    # the price list of the region has no row of the source type: '*Unavailable'
    "new_family_unlisted": ("i7ie.xlarge", {}, "eu-west-1", "no Graviton equivalent",
                            EXCLUDED),
    # d3 maps to no Graviton family: '*Unavailable'
    "unmapped_family": ("d3.xlarge", {}, "us-east-1", "no Graviton equivalent", EXCLUDED),
    "windows": ("m5.large", {"category": "windows", "operation": "RunInstances:0002"},
                "us-east-1", "Windows", EXCLUDED),
    "graviton": ("m6g.large", {}, "us-east-1", "already Graviton", GRAVITON),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    cache = tmp_path_factory.mktemp("effort-cache")
    meta = {"base_url": "http://127.0.0.1/test",
            "ec2": {"publication_date": "2026-11-20T00:00:00Z"}}
    write_region(cache, "us-east-1", RATES, meta)
    write_region(cache, "eu-west-1", {RateKey("m5.large"): 0.107}, meta)
    return Reference(cache_dir=cache, use_cache=True)


def _line(instance_type: str, region: str, **fields) -> dict:
    row = {"month": "2026-10", "region": region, "instance_type": instance_type,
           "category": "usage", "hours": HOURS, "nih": 0.0, "hours_without_nf": HOURS,
           "cost": float("nan"), "lines": 1, "source": "test"}
    row.update(fields)
    return row


@pytest.mark.parametrize("name", sorted(CASES))
def test_effort_follows_the_dashboard(reference, name):
    instance_type, fields, region, reason, effort = CASES[name]
    cost = {"cost": 0.03 * HOURS} if fields.get("category") in ("spot", "ri",
                                                                  "instance_sp") else {}
    usage = usage_frame([_line(instance_type, region, **{**cost, **fields})])
    line = run_model(usage, reference).lines.iloc[0]
    assert (line["reason"], line["effort"]) == (reason, effort)


def test_metal_and_new_families_are_priced(reference):
    usage = usage_frame([_line("m5.metal", "us-east-1"), _line("i7ie.xlarge", "us-east-1")])
    lines = run_model(usage, reference).lines.set_index("instance_type")
    assert lines.loc["m5.metal", "graviton_cost"] == pytest.approx(2.464 * HOURS)
    assert lines.loc["i7ie.xlarge", "graviton_cost"] == pytest.approx(0.4677 * HOURS)
    assert lines["priced"].all()


def test_without_a_price_list_spot_is_still_excluded():
    """The packaged snapshot holds on-demand Linux only: other operations are presumed
    listed, except Spot's."""
    usage = usage_frame([_line("m5.large", "us-east-1", category="spot", cost=20.0,
                               operation="RunInstances:SV050"),
                         _line("m5.large", "us-east-1", operation=SQL_STANDARD_LINUX,
                               cost=300.0)])
    lines = run_model(usage, Reference()).lines
    assert list(zip(lines["reason"], lines["effort"])) == [
        ("Spot", EXCLUDED), ("no Graviton equivalent", EASY)]


def test_a_family_the_packaged_tables_lack_is_unpriced_not_without_equivalent():
    usage = usage_frame([_line("i7ie.xlarge", "us-east-1"), _line("c5.24xlarge", "us-east-1")])
    lines = run_model(usage, Reference()).lines.set_index("instance_type")
    assert (lines.loc["i7ie.xlarge", "reason"], lines.loc["i7ie.xlarge", "target_type"]) == \
        ("no price", "i8ge.xlarge")
    # c6g is known, without a 24xlarge
    assert lines.loc["c5.24xlarge", "reason"] == "no Graviton equivalent"
    assert lines.loc["c5.24xlarge", "effort"] == EASY
