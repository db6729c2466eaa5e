"""Amortized cost of fee lines: unused RI fees and unused Savings Plan commitment."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from devkit.synth_cur import Template, write_synthetic_cur
from nitrometer.cli import main
from nitrometer.savings.cur import read_usage
from nitrometer.savings.model import ELIGIBLE, UNUSED_SP, run_model

RI_USAGE = Template("r5.large", "RI-covered", line_type="DiscountedUsage", rate=0.0, weight=10)
RI_FEE = Template("r5.large", "RI-covered", line_type="RIFee", usage_kind="HeavyUsage",
                  rate=0.126, ri_unused_upfront=0.5, ri_unused_recurring=0.25, weight=3)
GRAVITON_RI_FEE = Template("m6g.large", "already Graviton", line_type="RIFee",
                           usage_kind="HeavyUsage", rate=0.06, ri_unused_upfront=1.0, weight=2)
SP_FEE = Template("", UNUSED_SP, line_type="SavingsPlanRecurringFee",
                  product_code="ComputeSavingsPlans", usage_kind="ComputeSP:1yrNoUpfront",
                  operation="", rate=10.0, sp_commitment=10.0, sp_used_commitment=7.5, weight=2)
SP_FEE_USED = Template("", UNUSED_SP, line_type="SavingsPlanRecurringFee",
                       product_code="ComputeSavingsPlans", usage_kind="ComputeSP:3yrNoUpfront",
                       operation="", rate=4.0, sp_commitment=4.0, sp_used_commitment=4.0,
                       weight=1)
# Amortized to 0: the negation of SP-covered usage and a reservation's upfront purchase.
NEGATION = Template("m6i.large", "", line_type="SavingsPlanNegation", rate=-0.096, weight=3)
UPFRONT = Template("r5.large", "", line_type="Fee", usage_kind="HeavyUsage", rate=500.0,
                   weight=1)
TEMPLATES = (
    Template("m5.large", ELIGIBLE, rate=0.096, weight=20),
    # priced at the Graviton Compute Savings Plan rate, which the packaged snapshot lacks
    Template("m6i.large", "no price", line_type="SavingsPlanCoveredUsage",
             offering_type="ComputeSavingsPlans", rate=0.096, weight=5),
    RI_USAGE, RI_FEE, GRAVITON_RI_FEE, SP_FEE, SP_FEE_USED, NEGATION, UPFRONT,
)
FEE_COLUMNS = ["reservation_unused_amortized_upfront_fee_for_billing_period",
               "reservation_unused_recurring_fee", "savings_plan_total_commitment_to_date",
               "savings_plan_used_commitment"]


@pytest.fixture(scope="module")
def fee_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("fees") / "cur2.parquet"
    counts = write_synthetic_cur(path, 30_000, templates=TEMPLATES, seed=11, batch_lines=10_000)
    return path, {TEMPLATES[i]: n for i, n in counts.items()}


def test_unused_fees_land_in_their_rows(fee_report, reference):
    path, n = fee_report
    assert all(n[t] > 0 for t in TEMPLATES)
    result = run_model(read_usage([path]), reference)
    rows = result.exclusions().set_index("reason")

    ri_unused = n[RI_FEE] * 0.75
    ri = rows.loc["RI-covered"]
    assert ri["lines"] == n[RI_USAGE] + n[RI_FEE]
    assert ri["unused_fees"] == pytest.approx(ri_unused)
    # hours are the covered usage's only; its effective cost is 0.06 an hour in the file
    assert ri["cost"] - ri_unused == pytest.approx(0.06 * ri["hours"], rel=1e-6)
    assert ri["hours"] > 0

    graviton = rows.loc["already Graviton"]
    assert (graviton["lines"], graviton["hours"]) == (n[GRAVITON_RI_FEE], 0)
    assert graviton["cost"] == pytest.approx(n[GRAVITON_RI_FEE] * 1.0)

    sp = rows.loc[UNUSED_SP]
    assert (sp["lines"], sp["hours"]) == (n[SP_FEE] + n[SP_FEE_USED], 0)
    assert sp["cost"] == pytest.approx(n[SP_FEE] * 2.5)
    assert sp["unused_fees"] == pytest.approx(sp["cost"])

    totals = result.totals()
    assert totals["all_unused_fees"] == pytest.approx(ri_unused + n[GRAVITON_RI_FEE]
                                                      + n[SP_FEE] * 2.5)
    assert totals["all_lines"] == sum(n.values()) - n[NEGATION] - n[UPFRONT]
    # fees are never eligible: the savings use the eligible usage's cost alone
    assert rows.loc[ELIGIBLE, "unused_fees"] == 0
    assert totals["eligible_lines"] == n[TEMPLATES[0]]
    assert set(result.eligible.instance_type) == {"m5.large"}
    assert rows.loc["no price", "lines"] == n[TEMPLATES[1]]


def test_totals_agree_with_plain_pandas(fee_report, reference):
    path, _ = fee_report
    df = pd.read_parquet(path)
    kind = df.line_item_line_item_type
    cost = pd.Series(0.0, index=df.index)
    cost[kind.eq("Usage")] = df.line_item_unblended_cost
    cost[kind.eq("DiscountedUsage")] = df.reservation_effective_cost
    cost[kind.eq("SavingsPlanCoveredUsage")] = df.savings_plan_savings_plan_effective_cost
    cost[kind.eq("RIFee")] = (df.reservation_unused_amortized_upfront_fee_for_billing_period
                              + df.reservation_unused_recurring_fee)
    cost[kind.eq("SavingsPlanRecurringFee")] = (df.savings_plan_total_commitment_to_date
                                                - df.savings_plan_used_commitment)
    usage = kind.isin(["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"])
    result = run_model(read_usage([path]), reference)
    totals = result.totals()
    assert totals["all_cost"] == pytest.approx(cost.sum())
    assert result.lines.hours.sum() == pytest.approx(df.line_item_usage_amount[usage].sum())
    assert result.lines.nih.sum() == pytest.approx(
        df.line_item_normalized_usage_amount[usage].sum())


def test_report_without_fee_columns_leaves_fee_lines_out(fee_report, tmp_path, reference):
    path, n = fee_report
    legacy = tmp_path / "no-fees.parquet"
    pq.write_table(pq.read_table(path).drop_columns(FEE_COLUMNS), legacy)
    rows = run_model(read_usage([legacy]), reference).exclusions().set_index("reason")
    assert rows.loc["RI-covered", "lines"] == n[RI_USAGE]
    assert rows.loc["already Graviton", "lines"] == 0
    assert rows.loc[UNUSED_SP, "lines"] == 0
    assert rows["unused_fees"].sum() == 0
    # the covered usage keeps its effective cost
    assert rows.loc["RI-covered", "cost"] == pytest.approx(
        0.06 * rows.loc["RI-covered", "hours"], rel=1e-6)


def test_unused_commitment_in_table_and_json(fee_report, capsys):
    path, n = fee_report
    assert main(["savings", "--cur", str(path), "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    sp = next(row for row in doc["exclusions"] if row["reason"] == UNUSED_SP)
    assert sp["cost"] == pytest.approx(n[SP_FEE] * 2.5)
    assert main(["savings", "--cur", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{UNUSED_SP}  " in out
    unused = doc["totals"]["all_unused_fees"]
    assert f"of which unused RI fees and Savings Plan commitment ${unused:,.2f}" in out
