"""`nitrometer savings` end to end: table, JSON against its documented schema, HTML in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from devkit.synth_cur import write_synthetic_cur
from nitrometer.cli import main
from nitrometer.savings.schema import JSON_SCHEMA

DOCS = Path(__file__).resolve().parents[2] / "docs" / "savings.md"


@pytest.fixture(scope="module")
def cur_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cur") / "cur2.parquet"
    write_synthetic_cur(path, 20_000, seed=3)
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["savings", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_names_sources_dates_and_exclusions(capsys, cur_file):
    code, out, _ = _run(capsys, "--cur", str(cur_file), "--nih-reduction", "15")
    assert code == 0
    assert "as of 2026-07-20" in out and "as of 2026-06-22" in out
    assert "NIH reduction: 15 % (assumed)" in out
    for reason in ("Windows", "Spot", "RI-covered", "instance-SP-covered", "no price"):
        assert re.search(rf"^{reason}\s+\d", out, re.M), reason
    assert "warning: no prices for region eu-central-1" in out


def test_json_matches_the_documented_schema(capsys, cur_file):
    code, out, err = _run(capsys, "--cur", str(cur_file), "-o", "json",
                          "--generation", "graviton3")
    assert code == 0
    doc = json.loads(out)
    jsonschema.validate(doc, JSON_SCHEMA)
    assert doc["generation"] == "graviton3"
    assert {row["target_family"] for row in doc["by_family"]} <= {"c7g", "m7g", "r7g", "t4g"}
    assert "warning: no prices for region eu-central-1" in err
    # the schema in docs/savings.md is the one the code validates against
    block = re.search(r"## JSON output schema.*?```json\n(.*?)```", DOCS.read_text(), re.S)
    assert block and json.loads(block.group(1)) == JSON_SCHEMA


def test_usage_csv_with_user_prices(capsys, tmp_path):
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours,region\nm5.large,100,eu-west-1\n")
    prices = tmp_path / "prices.csv"
    prices.write_text("instance_type,price,region\nm5.large,0.107,eu-west-1\n"
                      "m6g.large,0.086,eu-west-1\n")
    code, out, _ = _run(capsys, "--usage", str(usage), "--prices", str(prices), "-o", "json")
    totals = json.loads(out)["totals"]
    assert code == 0
    assert totals["cost"] == pytest.approx(10.7)
    assert totals["base_savings"] == pytest.approx(10.7 - 8.6)


@pytest.mark.parametrize("argv, message", [
    ([], "give one input"),
    (["--usage", "/nonexistent.csv"], "cannot read /nonexistent.csv"),
    (["--usage", "x.csv", "--nih-reduction", "55"], "outside 0-40 %"),
    (["--usage", "x.csv", "--measured"], "--measured needs --prometheus"),
])
def test_bad_input_is_one_line(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_not_a_report_through_the_cli(capsys, tmp_path):
    path = tmp_path / "photo.csv"
    path.write_text("a,b\n1,2\n")
    code, _, err = _run(capsys, "--cur", str(path))
    assert code == 2 and "is not a Cost and Usage Report" in err


def test_html_renders_in_headless_chromium(capsys, tmp_path, cur_file):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make sysdeps`")
    report = tmp_path / "report.html"
    code, _, _ = _run(capsys, "--cur", str(cur_file), "-o", "html", "--out", str(report))
    assert code == 0
    html = report.read_text()
    assert "<script src" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    for chart in ("chart-family", "chart-month-cost", "chart-month-nih", "chart-sweep"):
        assert re.search(rf'<svg id="{chart}"[^>]*>.*?<rect class="bar"', dom, re.S), chart
    assert "Uncaught" not in result.stderr
    assert "2026-07-20" in dom and "instance-SP-covered" in dom
    assert "target local disk" in dom and "Savings implementation effort" in dom
