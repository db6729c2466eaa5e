"""Prices from the AWS Price List bulk API (served on 127.0.0.1) and a real bill priced the
way the Graviton Savings Dashboard prices it: by operation and by purchase option."""

from __future__ import annotations

import json
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devkit import offers
from nitrometer.cli import main
from nitrometer.savings.cur import read_usage
from nitrometer.savings.model import run_model
from nitrometer.savings.reference import Reference

HOURS = 720.0


@pytest.fixture(scope="module")
def price_list(tmp_path_factory):
    root = offers.write_tree(tmp_path_factory.mktemp("pricing"))
    with offers.serve(root) as url:
        yield url


@pytest.fixture(scope="module")
def cache(tmp_path_factory, price_list):
    cache = tmp_path_factory.mktemp("cache")
    assert main(["prices", "update", "--region", "us-east-1", "eu-west-1",
                 "--base-url", price_list, "--cache-dir", str(cache), "--no-progress"]) == 0
    return cache


def _line(line_type, usage_type, operation, region="us-east-1", cost=0.0, month="2026-10",
          os_name="Linux", hours=HOURS, **extra) -> dict:
    row = {"line_item_line_item_type": line_type, "line_item_product_code": "AmazonEC2",
           "line_item_usage_type": usage_type, "line_item_operation": operation,
           "line_item_usage_start_date": datetime.fromisoformat(f"{month}-01"),
           "line_item_usage_amount": hours, "line_item_normalized_usage_amount": hours * 4,
           "line_item_unblended_cost": cost, "reservation_effective_cost": None,
           "savings_plan_savings_plan_effective_cost": None, "savings_plan_offering_type": None,
           "savings_plan_purchase_term": None, "savings_plan_payment_option": None,
           "pricing_lease_contract_length": None, "pricing_purchase_option": None,
           "pricing_offering_class": None,
           "product_instance_type": usage_type.rpartition(":")[2],
           "product": [("region", region), ("operating_system", os_name)]}
    row.update(extra)
    return row


BILL = {
    "linux": _line("Usage", "BoxUsage:m5.large", "RunInstances", cost=0.096 * HOURS),
    "sql": _line("Usage", "BoxUsage:m5.large", "RunInstances:0004", cost=0.416 * HOURS),
    "rhel": _line("Usage", "BoxUsage:m5.large", "RunInstances:0010", cost=0.1248 * HOURS,
                  os_name="RHEL"),
    "windows": _line("Usage", "BoxUsage:m5.large", "RunInstances:0002", cost=0.188 * HOURS,
                     os_name="Windows"),
    "spot": _line("Usage", "SpotUsage:m5.large", "RunInstances:SV001", cost=0.035 * HOURS),
    "ri": _line("DiscountedUsage", "BoxUsage:m5.large", "RunInstances",
                reservation_effective_cost=0.05597 * HOURS,
                pricing_lease_contract_length="1yr", pricing_purchase_option="Partial Upfront",
                pricing_offering_class="standard"),
    "instance_sp": _line("SavingsPlanCoveredUsage", "BoxUsage:m5.large", "RunInstances",
                         cost=0.096 * HOURS, savings_plan_savings_plan_effective_cost=0.04 * HOURS,
                         savings_plan_offering_type="EC2InstanceSavingsPlans",
                         savings_plan_purchase_term="3yr",
                         savings_plan_payment_option="All Upfront"),
    "compute_sp": _line("SavingsPlanCoveredUsage", "BoxUsage:m5.large", "RunInstances",
                        cost=0.096 * HOURS,
                        savings_plan_savings_plan_effective_cost=0.068 * HOURS,
                        savings_plan_offering_type="ComputeSavingsPlans",
                        savings_plan_purchase_term="1yr", savings_plan_payment_option="No Upfront"),
    "eu_linux": _line("Usage", "EU-BoxUsage:m5.large", "RunInstances", region="eu-west-1",
                      cost=0.107 * HOURS),
    "eu_compute_sp": _line("SavingsPlanCoveredUsage", "EU-BoxUsage:m5.large", "RunInstances",
                           region="eu-west-1", cost=0.107 * HOURS,
                           savings_plan_savings_plan_effective_cost=0.075 * HOURS,
                           savings_plan_offering_type="ComputeSavingsPlans",
                           savings_plan_purchase_term="1yr",
                           savings_plan_payment_option="No Upfront"),
    "negative": _line("Usage", "BoxUsage:m5.large", "RunInstances", cost=-69.12,
                      hours=-HOURS),
    "not_cached": _line("Usage", "USW2-BoxUsage:m5.large", "RunInstances", region="us-west-2",
                        cost=0.096 * HOURS),
    "latest": _line("Usage", "BoxUsage:m5.large", "RunInstances", cost=0.096 * HOURS,
                    month="2026-11"),
}


@pytest.fixture(scope="module")
def bill(tmp_path_factory):
    rows = list(BILL.values())
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    product = pa.array(columns.pop("product"), pa.map_(pa.string(), pa.string()))
    table = pa.table({**{k: pa.array(v) for k, v in columns.items()}, "product": product})
    path = tmp_path_factory.mktemp("bill") / "cur2.parquet"
    pq.write_table(table, path)
    return path


def test_bill_priced_like_the_dashboard(bill, cache):
    result = run_model(read_usage([bill]), Reference(cache_dir=cache, use_cache=True))
    lines = result.lines.set_index(["region", "operation", "category", "month"])
    got = {name: lines.loc[(row["product"][0][1],
                            row["line_item_operation"] if name != "negative" else
                            "RunInstances", category, row["line_item_usage_start_date"]
                            .strftime("%Y-%m"))]
           for name, row, category in (
               ("linux", BILL["linux"], "usage"), ("sql", BILL["sql"], "usage"),
               ("rhel", BILL["rhel"], "usage"), ("windows", BILL["windows"], "windows"),
               ("spot", BILL["spot"], "spot"), ("ri", BILL["ri"], "ri"),
               ("instance_sp", BILL["instance_sp"], "instance_sp"),
               ("compute_sp", BILL["compute_sp"], "compute_sp"),
               ("eu_linux", BILL["eu_linux"], "usage"),
               ("eu_compute_sp", BILL["eu_compute_sp"], "compute_sp"),
               ("negative", BILL["negative"], "invalid"),
               ("not_cached", BILL["not_cached"], "usage"))}
    expected = {  # reason, effort, Graviton rate (None: not priced)
        "linux": ("eligible", "Typically Easy", 0.077),
        # SQL Server on Linux: mapped, but no Graviton rate for its operation (see
        # test_effort.py for the dashboard's rules)
        "sql": ("no Graviton equivalent", "Typically Easy", None),
        "rhel": ("eligible", "Typically Easy", 0.1058),  # RHEL on Graviton, not Linux
        "windows": ("Windows", "Excluded", None),
        "spot": ("Spot", "Excluded", None),  # RunInstances:SV001 has no price list row
        "ri": ("RI-covered", "Requires Additional Planning", 0.022 + 196 / 8760),
        "instance_sp": ("instance-SP-covered", "Requires Additional Planning", 0.0328),
        "compute_sp": ("eligible", "Typically Easy", 0.0539),
        "eu_linux": ("eligible", "Typically Easy", 0.086),
        "eu_compute_sp": ("eligible", "Typically Easy", 0.0602),
        "negative": ("invalid lines", "Excluded", None),
        "not_cached": ("no price", "Typically Easy", None),
    }
    for name, (reason, effort, rate) in expected.items():
        line = got[name]
        assert (line["reason"], line["effort"]) == (reason, effort), name
        if rate is None:
            assert not line["priced"] and line["graviton_cost"] == 0, name
        else:
            assert line["priced"], name
            assert line["graviton_cost"] == pytest.approx(rate * HOURS), name
            assert line["base_savings"] == pytest.approx(line["cost"] - rate * HOURS), name
    # the headline: Typically Easy plus RI- and Instance-SP-covered, like the dashboard
    priced = [n for n, (_, _, rate) in expected.items() if rate is not None] + ["latest"]
    graviton_cost = sum((expected[n][2] if n != "latest" else 0.077) * HOURS for n in priced)
    assert result.totals()["graviton_cost"] == pytest.approx(graviton_cost)
    easy = run_model(read_usage([bill]), Reference(cache_dir=cache, use_cache=True),
                     easy_only=True).totals()
    planned = (expected["ri"][2] + expected["instance_sp"][2]) * HOURS
    assert easy["graviton_cost"] == pytest.approx(graviton_cost - planned)
    latest = result.latest_month()
    assert latest["month"] == "2026-11"
    assert latest["graviton_cost"] == pytest.approx(0.077 * HOURS)


def test_cli_names_sources_and_regions_without_prices(capsys, bill, cache):
    for output in ("json", "table", "html"):
        code = main(["savings", "--cur", str(bill), "--cache-dir", str(cache), "-o", output])
        out, err = capsys.readouterr()
        assert code == 0
        # said on stderr whatever the format, with the command that fixes it
        assert "no prices for region us-west-2" in err, output
        assert "nitrometer prices update --region us-west-2" in err, output
        assert "invalid lines" in out, output
    code = main(["savings", "--cur", str(bill), "--cache-dir", str(cache), "-o", "json"])
    doc = json.loads(capsys.readouterr().out)
    by_region = doc["sources"]["prices"]["by_region"]
    assert by_region["us-east-1"]["as_of"] == "2026-11-20"
    assert "AWS Price List bulk API" in by_region["eu-west-1"]["source"]
    assert by_region["us-west-2"]["source"] is None
    assert doc["latest_month"]["month"] == "2026-11"
    efforts = {(e["effort"], e["reason"]): e for e in doc["by_effort"]}
    ri = efforts[("Requires Additional Planning", "RI-covered")]
    assert ri["in_headline"] and ri["graviton_cost"] == pytest.approx(
        (0.022 + 196 / 8760) * HOURS)
    spot = efforts[("Excluded", "Spot")]
    assert not spot["in_headline"] and spot["cost"] == pytest.approx(0.035 * HOURS)
    assert efforts[("Typically Easy", "no Graviton equivalent")]["cost"] == \
        pytest.approx(0.416 * HOURS)
    assert any("1 invalid lines" in w for w in doc["warnings"])
    # usage in a region without prices keeps the cost the bill states
    no_price = next(e for e in doc["exclusions"] if e["reason"] == "no price")
    assert no_price["lines"] == 1 and no_price["cost"] == pytest.approx(0.096 * HOURS)

