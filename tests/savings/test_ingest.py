"""Every report spelling becomes the same usage table; bad input is one clear line."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nitrometer.errors import NitrometerError
from nitrometer.savings.cur import read_usage

# One small bill in Athena/CUR 2.0 snake_case, and the legacy CSV header of each column.
LEGACY = {
    "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_usage_type": "lineItem/UsageType",
    "line_item_operation": "lineItem/Operation",
    "line_item_usage_start_date": "lineItem/UsageStartDate",
    "line_item_usage_amount": "lineItem/UsageAmount",
    "line_item_normalization_factor": "lineItem/NormalizationFactor",
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "reservation_effective_cost": "reservation/EffectiveCost",
    "product_instance_type": "product/instanceType",
    "product_region": "product/region",
    "product_operating_system": "product/operatingSystem",
}
ROWS = [
    ("Usage", "BoxUsage:m5.large", "RunInstances", "2026-03-01T00:00:00Z", 10.0, 4.0, 0.96,
     0.0, "m5.large", "us-east-1", "Linux"),
    ("Usage", "BoxUsage:m5.large", "RunInstances", "2026-04-02T00:00:00Z", 5.0, 4.0, 0.48,
     0.0, "m5.large", "us-east-1", "Linux"),
    ("DiscountedUsage", "BoxUsage:c5.large", "RunInstances", "2026-03-01T00:00:00Z", 7.0, 4.0,
     0.0, 0.4, "c5.large", "us-east-1", "Linux"),
    ("Usage", "BoxUsage:m5.large", "RunInstances:0002", "2026-03-01T00:00:00Z", 2.0, 4.0,
     0.37, 0.0, "m5.large", "us-east-1", "Windows"),
    ("Usage", "SpotUsage:c5.large", "RunInstances:SV001", "2026-03-01T00:00:00Z", 3.0, 4.0,
     0.1, 0.0, "", "us-east-1", ""),
    ("RIFee", "HeavyUsage:c5.large", "RunInstances", "2026-03-01T00:00:00Z", 744.0, 4.0, 20.0,
     0.0, "", "us-east-1", ""),
    ("Usage", "TimedStorage-ByteHrs", "", "2026-03-01T00:00:00Z", 100.0, 0.0, 2.3, 0.0, "",
     "us-east-1", ""),
]
EXPECTED = {  # (month, type, category) -> (hours, cost, lines)
    ("2026-03", "m5.large", "usage"): (10.0, 0.96, 1),
    ("2026-04", "m5.large", "usage"): (5.0, 0.48, 1),
    ("2026-03", "c5.large", "ri"): (7.0, 0.4, 1),
    ("2026-03", "m5.large", "windows"): (2.0, 0.37, 1),
    ("2026-03", "c5.large", "spot"): (3.0, 0.1, 1),
}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=list(LEGACY))


def _summary(usage: pd.DataFrame) -> dict:
    # a fee line has no operation: summed with its reservation's usage
    sums = usage.groupby(["month", "instance_type", "category"])[["hours", "cost",
                                                                  "lines"]].sum()
    return {key: (round(r.hours, 6), round(r.cost, 6), int(r.lines))
            for key, r in zip(sums.index, sums.itertuples())}


def test_legacy_csv_headers(tmp_path):
    path = tmp_path / "legacy.csv"
    _frame().rename(columns=LEGACY).to_csv(path, index=False)
    usage = read_usage([path])
    assert _summary(usage) == EXPECTED
    # normalized hours come from the report's own factor
    assert usage[usage.instance_type == "m5.large"].nih.sum() == pytest.approx(4 * 17)


def test_gzip_csv_and_directory_of_parts(tmp_path):
    parts = tmp_path / "export" / "data"
    parts.mkdir(parents=True)
    frame = _frame()
    with gzip.open(parts / "part-1.csv.gz", "wt") as f:
        frame.iloc[:3].to_csv(f, index=False)
    athena = frame.iloc[3:].copy()
    athena["line_item_usage_start_date"] = pd.to_datetime(athena.line_item_usage_start_date)
    athena.to_parquet(parts / "part-2.parquet")
    (parts / "manifest.json").write_text("{}")  # not a report part: skipped
    assert _summary(read_usage([tmp_path / "export"])) == EXPECTED


def test_cur2_csv_with_product_json(tmp_path):
    frame = _frame()
    frame["product"] = [json.dumps({"region": r, "operating_system": o})
                        for r, o in zip(frame.product_region, frame.product_operating_system)]
    path = tmp_path / "cur2.csv"
    frame.drop(columns=["product_region", "product_operating_system"]).to_csv(path,
                                                                               index=False)
    usage = read_usage([path])
    assert _summary(usage) == EXPECTED
    assert set(usage.region) == {"us-east-1"}


def test_cur2_parquet_with_product_map(tmp_path):
    frame = _frame()
    product = pa.array([[("region", r), ("operating_system", o)] for r, o in
                        zip(frame.product_region, frame.product_operating_system)],
                       pa.map_(pa.string(), pa.string()))
    table = pa.Table.from_pandas(frame.drop(columns=["product_region",
                                                     "product_operating_system"]))
    path = tmp_path / "cur2.parquet"
    pq.write_table(table.append_column("product", product), path)
    assert _summary(read_usage([path])) == EXPECTED


def test_not_a_report(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("name,age\nada,36\n")
    with pytest.raises(NitrometerError, match="is not a Cost and Usage Report"):
        read_usage([path])
    binary = tmp_path / "random.parquet"
    binary.write_bytes(b"PAR1" + bytes(range(200)))
    with pytest.raises(NitrometerError, match="not a readable usage report"):
        read_usage([binary])
    with pytest.raises(NitrometerError, match="no such file"):
        read_usage([tmp_path / "missing.parquet"])


def test_missing_required_column_is_named(tmp_path):
    path = tmp_path / "short.csv"
    _frame().drop(columns=["line_item_unblended_cost"]).to_csv(path, index=False)
    with pytest.raises(NitrometerError, match="missing required column "
                                              "line_item_unblended_cost$"):
        read_usage([path])
    legacy = tmp_path / "legacy.csv"
    _frame().rename(columns=LEGACY).drop(columns=["lineItem/UsageAmount"]).to_csv(legacy,
                                                                                 index=False)
    with pytest.raises(NitrometerError, match="lineItem/UsageAmount"):
        read_usage([legacy])


def test_legacy_csv_fee_columns(tmp_path):
    """RIFee and SP fee lines count their unused part once the report has the columns."""
    frame = _frame().rename(columns=LEGACY)
    fee_row = frame["lineItem/LineItemType"].eq("RIFee")
    frame["reservation/UnusedAmortizedUpfrontFeeForBillingPeriod"] = fee_row * 1.5
    frame["reservation/UnusedRecurringFee"] = fee_row * 0.5
    sp_fee = {"lineItem/LineItemType": "SavingsPlanRecurringFee",
              "lineItem/UsageType": "ComputeSP:1yrNoUpfront",
              "lineItem/UsageStartDate": "2026-03-01T00:00:00Z", "lineItem/UsageAmount": 744.0,
              "lineItem/UnblendedCost": 5.0, "savingsPlan/TotalCommitmentToDate": 5.0,
              "savingsPlan/UsedCommitment": 3.25}
    frame = pd.concat([frame, pd.DataFrame([sp_fee])], ignore_index=True)
    path = tmp_path / "legacy-fees.csv"
    frame.to_csv(path, index=False)
    usage = read_usage([path])
    expected = dict(EXPECTED)
    expected[("2026-03", "c5.large", "ri")] = (7.0, 0.4 + 2.0, 2)  # RI hours: usage only
    expected[("2026-03", "", "unused_sp")] = (0.0, 1.75, 1)
    assert _summary(usage) == expected
    assert usage.unused_fees.sum() == pytest.approx(2.0 + 1.75)
    assert usage[usage.category == "ri"].nih.sum() == pytest.approx(4 * 7)
