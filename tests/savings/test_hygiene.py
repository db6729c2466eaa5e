"""Bad numbers in a bill or a usage table are counted as invalid lines, never priced; bad
price files are refused in one line; JSON output is always valid JSON."""

from __future__ import annotations

import json
import re

import pytest

from nitrometer.cli import main

HEADER = ("line_item_usage_type,line_item_usage_amount,line_item_line_item_type,"
          "line_item_unblended_cost,line_item_product_code,product_instance_type,"
          "product_region\n")


def _cur(tmp_path, rows: list[tuple[str, str, str]]):
    path = tmp_path / "cur.csv"
    path.write_text(HEADER + "".join(f"BoxUsage:{t},{hours},Usage,{cost},AmazonEC2,{t},"
                                     "us-east-1\n" for t, hours, cost in rows))
    return path


def _run(capsys, *args):
    code = main(["savings", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_bad_numbers_are_invalid_lines(capsys, tmp_path):
    bad = [("m5.large", "-720", "-69.12"), ("m5.large", "inf", "1"), ("m5.large", "720", "1e309"),
           ("m5.large", "nan", "5"), ("m5.large", "720", "-inf"), ("m5.large", "lots", "5"),
           ("m5.large", "720", "1e308x")]
    path = _cur(tmp_path, [("m5.large", "720", "69.12"), *bad])
    code, out, err = _run(capsys, "--cur", str(path), "-o", "json")
    assert code == 0
    doc = json.loads(out)  # strict JSON: no Infinity or NaN
    rows = {e["reason"]: e for e in doc["exclusions"]}
    assert rows["invalid lines"]["lines"] == len(bad)
    assert rows["invalid lines"]["cost"] == 0 and rows["invalid lines"]["hours"] == 0
    assert rows["eligible"]["lines"] == 1
    assert doc["totals"]["cost"] == pytest.approx(69.12)
    assert doc["totals"]["graviton_cost"] == pytest.approx(720 * 0.077)
    assert f"{len(bad)} invalid lines" in err and "m5.large" in err
    code, out, _ = _run(capsys, "--cur", str(path))
    assert code == 0 and not re.search(r"\d[\d,]{20,}", out)  # no 300-digit amounts


def test_usage_table_bad_rows_like_a_bill(capsys, tmp_path):
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours,cost\nm5.large,720,\nm5.large,-720,\n"
                     "m5.large,nan,\nm5.large,720,inf\nc5.large,oops,\n")
    code, out, err = _run(capsys, "--usage", str(usage), "-o", "json")
    assert code == 0
    doc = json.loads(out)
    rows = {e["reason"]: e["lines"] for e in doc["exclusions"]}
    assert rows["invalid lines"] == 4 and rows["eligible"] == 1
    assert "4 invalid lines" in err and "c5.large" in err


def test_typo_is_an_unknown_type_and_warnings_name_types(capsys, tmp_path):
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours\nm5.lareg,10\nm5.large,10\n")
    code, out, err = _run(capsys, "--usage", str(usage), "-o", "json")
    rows = {e["reason"]: e["lines"] for e in json.loads(out)["exclusions"]}
    assert code == 0 and rows["unknown instance type"] == 1 and rows["no price"] == 0
    assert "m5.lareg" in err


@pytest.mark.parametrize("price", ["-0.1", "inf", "nan", "-inf"])
def test_price_file_rejects_negative_and_non_finite(capsys, tmp_path, price):
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours\nm5.large,10\n")
    prices = tmp_path / "prices.csv"
    prices.write_text(f"instance_type,price\nm5.large,0.1\nm6g.large,{price}\n")
    code, out, err = _run(capsys, "--usage", str(usage), "--prices", str(prices))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"{prices}:3" in err and "m6g.large" in err
