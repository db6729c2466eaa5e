"""The model against the AWS blog's worked example and reports whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from devkit.synth_cur import DEFAULT_TEMPLATES, Template, write_synthetic_cur
from nitrometer.errors import ConfigError
from nitrometer.savings.cur import read_usage
from nitrometer.savings.model import ELIGIBLE, EXCLUSION_ROWS, UNUSED_SP, run_model
from nitrometer.savings.usage import read_usage_csv


def test_blog_worked_example(tmp_path, reference):
    """$61.54K base and a 15 % NIH reduction give $42.40K additional, $103.94K total."""
    base, additional, pct = 61_540.0, 42_400.0, 0.15
    pairs = [("m5.xlarge", "us-east-1"), ("m6i.xlarge", "us-east-1")]
    x86 = [reference.price(t, r) for t, r in pairs]
    grav = [reference.graviton_target(t, r).price for t, r in pairs]
    # hours such that sum(h * (x86 - grav)) = base and sum(h * grav) * pct = additional
    hours = np.linalg.solve([[x - g for x, g in zip(x86, grav)], grav],
                            [base, additional / pct])
    assert (hours > 0).all()
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours\n" + "".join(
        f"{t},{float(h)!r}\n" for (t, _), h in zip(pairs, hours)))
    totals = run_model(read_usage_csv(usage, "us-east-1"), reference,
                       nih_reduction=pct).totals()
    assert round(totals["base_savings"], 2) == 61_540.00
    assert round(totals["additional_savings"], 2) == 42_400.00
    assert round(totals["total_savings"], 2) == 103_940.00


def test_sample_2018_matches_plain_pandas(sample_2018, reference):
    result = run_model(read_usage(sample_2018), reference, nih_reduction=0.10)
    cols = ["line_item_usage_type", "line_item_line_item_type", "line_item_operation",
            "line_item_product_code", "product_instance_type", "product_region",
            "product_operating_system", "line_item_usage_amount", "line_item_unblended_cost",
            "reservation_effective_cost", "line_item_normalized_usage_amount",
            "reservation_unused_amortized_upfront_fee_for_billing_period",
            "reservation_unused_recurring_fee"]
    df = pd.concat(pd.read_parquet(p, columns=cols) for p in sample_2018)
    kind = df.line_item_line_item_type
    ri_fee = kind.eq("RIFee") & df.line_item_usage_type.str.contains("HeavyUsage")
    df = df[(df.line_item_usage_type.str.contains("BoxUsage|SpotUsage")
             & kind.isin(["Usage", "DiscountedUsage"])) | ri_fee].copy()
    assert df.line_item_product_code.eq("AmazonEC2").all()
    fee = df.line_item_line_item_type.eq("RIFee")
    assert fee.sum() == 27  # the sample's reservations, one fee line a month each
    # amortized: a fee line costs its reservation's unused part and has no hours
    df["cost"] = df.line_item_unblended_cost.where(
        ~fee, df.reservation_unused_amortized_upfront_fee_for_billing_period
        + df.reservation_unused_recurring_fee)
    df["cost"] = df.cost.where(df.line_item_line_item_type.ne("DiscountedUsage"),
                               df.reservation_effective_cost)
    df.loc[fee, ["line_item_usage_amount", "line_item_normalized_usage_amount"]] = 0.0
    df["itype"] = df.line_item_usage_type.str.split(":").str[1]
    spot = df.line_item_usage_type.str.contains("SpotUsage")
    # fee lines name no operating system: a Windows reservation shows in the operation
    windows = (df.product_operating_system.eq("Windows")
               | df.line_item_operation.eq("RunInstances:0002"))
    ri = df.line_item_line_item_type.isin(["DiscountedUsage", "RIFee"])
    unpriced_region = ~df.product_region.isin(reference.regions)
    expected_lines = {
        "Windows": int(windows.sum()),
        "Spot": int((spot & ~windows).sum()),
        "RI-covered": int((ri & ~spot & ~windows).sum()),
        "no price": int((unpriced_region & ~ri & ~spot & ~windows).sum()),
    }
    eligible = df[~(unpriced_region | ri | spot | windows)]
    expected_lines[ELIGIBLE] = len(eligible)
    exclusions = result.exclusions().set_index("reason")
    for reason, lines in expected_lines.items():
        assert exclusions.loc[reason, "lines"] == lines, reason
    assert exclusions["lines"].sum() == len(df)
    # the 2018 sample has no Graviton and no Savings Plans
    assert exclusions.loc[["already Graviton", "instance-SP-covered"], "lines"].sum() == 0
    totals = result.totals()
    assert totals["cost"] == pytest.approx(eligible.line_item_unblended_cost.sum())
    assert totals["all_cost"] == pytest.approx(df.cost.sum())
    unused = df[fee].cost.sum()
    assert unused > 0 and totals["all_unused_fees"] == pytest.approx(unused)
    assert totals["hours"] == pytest.approx(eligible.line_item_usage_amount.sum())
    assert totals["nih"] == pytest.approx(eligible.line_item_normalized_usage_amount.sum())
    graviton_cost = sum(reference.graviton_target(t, "us-east-1").price * h for t, h in
                        eligible.groupby("itype").line_item_usage_amount.sum().items())
    assert totals["graviton_cost"] == pytest.approx(graviton_cost)
    assert totals["base_savings"] == pytest.approx(totals["cost"] - graviton_cost)
    assert totals["additional_savings"] == pytest.approx(0.10 * graviton_cost)
    # RI lines are priced at their effective (amortized) cost, not the zero unblended cost,
    # plus the unused fees of the reservations of their types
    for reason, rows in (("RI-covered", ri & ~spot & ~windows), ("Windows", windows)):
        assert exclusions.loc[reason, "cost"] == pytest.approx(df[rows].cost.sum()), reason
        assert exclusions.loc[reason, "unused_fees"] == pytest.approx(
            df[rows & fee].cost.sum()), reason
        assert exclusions.loc[reason, "hours"] == pytest.approx(
            df[rows].line_item_usage_amount.sum()), reason
    assert exclusions.loc[UNUSED_SP, "lines"] == 0
    assert any("eu-west-2" in w for w in result.warnings)


def test_generated_cur2_counts_every_reason(tmp_path, cached_reference):
    path = tmp_path / "cur2.parquet"
    counts = write_synthetic_cur(path, 60_000, seed=7, batch_lines=25_000)
    expected = {}
    for index, template in enumerate(DEFAULT_TEMPLATES):
        if template.expected_reason:
            expected[template.expected_reason] = (expected.get(template.expected_reason, 0)
                                                  + counts[index])
    assert set(expected) == set(EXCLUSION_ROWS)  # every reason is exercised
    result = run_model(read_usage([path]), cached_reference)
    got = result.exclusions().set_index("reason")["lines"].to_dict()
    assert got == expected
    # Compute SP usage priced at the target's Compute SP rate of the same term and payment
    csp = result.lines[result.lines.instance_type == "m6i.large"]
    assert csp.graviton_cost.sum() == pytest.approx(0.0604 * csp.hours.sum())
    isp = result.lines[result.lines.instance_type == "c6i.large"]
    assert isp.graviton_cost.sum() == pytest.approx(0.0312 * isp.hours.sum())
    assert set(isp.effort) == {"Requires Additional Planning"}
    assert any("invalid lines" in w and "m5.large" in w for w in result.warnings)
    # SP-covered lines cost their Savings Plan effective cost (0.7 x on-demand in the file)
    sp_types = result.lines[result.lines.instance_type == "m6i.large"]
    assert sp_types.cost.sum() == pytest.approx(0.7 * 0.096 * sp_types.hours.sum(), rel=1e-6)
    assert sorted(result.by_month().month) == ["2026-01", "2026-02", "2026-03"]


def test_generation_changes_the_target(tmp_path, reference):
    path = tmp_path / "cur2.parquet"
    write_synthetic_cur(path, 2_000, templates=(Template("m6i.large", ELIGIBLE),))
    usage = read_usage([path])
    latest = run_model(usage, reference).by_type()
    g4 = run_model(usage, reference, generation="graviton4").by_type()
    assert list(latest.target_type) == ["m7g.large"]
    assert list(g4.target_type) == ["m8g.large"]


def test_sweep_is_linear_in_the_reduction(tmp_path, reference):
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours,region\nc5.xlarge,1000,us-east-1\n")
    result = run_model(read_usage_csv(usage, "us-east-1"), reference)
    sweep = result.sweep()
    assert [s["nih_reduction_pct"] for s in sweep] == list(range(0, 45, 5))
    graviton_cost = 1000 * reference.price("c6g.xlarge", "us-east-1")
    assert sweep[0]["total_savings"] == pytest.approx(1000 * 0.17 - graviton_cost)
    assert sweep[-1]["additional_savings"] == pytest.approx(0.4 * graviton_cost)


def test_unknown_types_are_counted_not_fatal(tmp_path, reference):
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours\nzz9.large,10\nzz9.xlarge,5\nm5.large,1\n")
    result = run_model(read_usage_csv(usage, "us-east-1"), reference)
    assert result.exclusions().set_index("reason").loc["unknown instance type", "lines"] == 2
    assert any("2 unknown instance types" in w for w in result.warnings)
    with pytest.raises(ConfigError):
        run_model(read_usage_csv(usage, "us-east-1"), reference, nih_reduction=1.5)
