"""Inputs that would silently change the answer are named: dates that are no date, usage
without prices, moves that cost more."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nitrometer.cli import main
from nitrometer.savings.model import INVALID, run_model
from nitrometer.savings.usage import usage_frame
from tests.savings.test_ingest import LEGACY, ROWS


def _line(month: str, instance_type: str = "m5.large", region: str = "us-east-1",
          cost: float = 96.0) -> dict:
    return {"month": month, "region": region, "instance_type": instance_type,
            "category": "usage", "hours": 1000.0, "nih": 4000.0, "hours_without_nf": 0.0,
            "cost": cost, "lines": 1, "source": "test"}


@pytest.mark.parametrize("bad", ["garbage", "9999-99", "2026-13", "2026-00", "26-10-0"])
def test_a_date_that_is_no_date_is_an_invalid_line(reference, bad):
    result = run_model(usage_frame([_line("2026-10"), _line(bad)]), reference)
    assert list(result.by_month()["month"]) == ["2026-10"]
    assert result.latest_month()["month"] == "2026-10"
    invalid = result.exclusions().set_index("reason").loc[INVALID]
    assert invalid["lines"] == 1 and invalid["cost"] == pytest.approx(96.0)
    assert any("no date" in w and bad in w for w in result.warnings)


def test_a_garbage_date_in_a_bill_takes_no_headline(tmp_path, capsys):
    rows = [list(r) for r in ROWS]
    rows[1][3] = "garbage-date"  # the April line: would have been the latest month
    path = tmp_path / "cur.csv"
    pd.DataFrame(rows, columns=list(LEGACY.values())).to_csv(path, index=False)
    assert main(["savings", "--cur", str(path), "-o", "json", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [m["month"] for m in doc["by_month"]] == ["2026-03"]
    assert doc["latest_month"]["month"] == "2026-03"
    assert "usage dates that are no date (garbage" in err


def test_usage_without_prices_keeps_its_billed_cost(tmp_path, capsys):
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours,region,cost\nm5.large,720,eu-north-1,73.44\n"
                     "m5.large,720,us-east-1,69.12\n")
    assert main(["savings", "--usage", str(usage)]) == 0
    out, err = capsys.readouterr()
    no_price = next(line for line in out.splitlines() if line.startswith("no price"))
    assert "$73.44" in no_price
    assert "nitrometer prices update --region eu-north-1" in out
    assert "nitrometer prices update --region eu-north-1" in err


def test_a_bill_without_prices_says_its_cost_and_the_fix(tmp_path, capsys):
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours,region,cost\nm5.large,720,eu-north-1,73.44\n"
                     "c5.large,720,eu-north-1,65.52\n")
    for output in ("table", "html"):
        assert main(["savings", "--usage", str(usage), "-o", output]) == 0
        out = capsys.readouterr().out
        assert "cost of usage without prices" in out, output
        assert "usage without prices costs $138.96 and is not in the headline: run nitrometer " \
               "prices update --region eu-north-1" in out, output
    assert main(["savings", "--usage", str(usage), "-o", "json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["cost"] == 0 and totals["no_price_cost"] == pytest.approx(138.96)
    assert totals["no_price_regions"] == ["eu-north-1"]


def test_a_host_without_a_cost_counter_is_priced_not_free(reference):
    """An agent without a price exports no cost counter: its hours are priced on demand,
    not taken as costing nothing (which would make every move look like a loss)."""
    from nitrometer.savings.prom import Host, fleet_usage

    host = Host("nitrometer", "x1:9720", "m5.large", "us-east-1", "x86_64", hours=100.0,
                nih=400.0)
    line = run_model(fleet_usage([host]), reference).lines.iloc[0]
    assert line["reason"] == "eligible"
    assert line["cost"] == pytest.approx(100 * reference.price("m5.large", "us-east-1"))
