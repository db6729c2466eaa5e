"""The savings dashboard's three stats equal `nitrometer savings --prometheus` on the same
Prometheus, time range and NIH reduction."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from tests.dashboards import grafana

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

STATS = {
    "Potential Graviton Base Savings": "base_savings",
    "Estimated Additional Savings Due to Performance": "additional_savings",
    "Total Potential Graviton Savings": "total_savings",
}
NIH_PCT = "25"  # not the default, so a dashboard ignoring $nih would disagree
# The model's JSON rounds money to 6 decimals.
ABS_TOLERANCE = 2e-6


def test_stats_equal_the_savings_model(fleet):
    dash = grafana.dashboards()["dashboards/nitrometer-graviton-savings.json"]
    start = fleet.started
    end = start + math.floor(time.time() - start)
    values = grafana.default_values(dash) | {"nih": NIH_PCT}
    values |= grafana.grafana_intervals(end - start, 1, 100)

    model = subprocess.run(
        [sys.executable, "-m", "nitrometer", "savings", "--prometheus", fleet.prom.url,
         "--start", str(start), "--end", str(end), "--nih-reduction", NIH_PCT,
         "-o", "json", "--no-progress"], capture_output=True, text=True)
    assert model.returncode == 0, model.stderr
    totals = json.loads(model.stdout)["totals"]
    assert totals["eligible_lines"] == 1 and totals["base_savings"] > 0

    panels = {p["title"]: p for p in grafana.data_panels(dash)}
    for title, key in STATS.items():
        expr = grafana.substitute(panels[title]["targets"][0]["expr"], values)
        result = fleet.prom.query(expr, at=end)
        assert len(result) == 1, f"{title}: {result}"
        shown = float(result[0]["value"][1])
        assert shown == pytest.approx(totals[key], rel=1e-3, abs=ABS_TOLERANCE), title
    # The additional savings scale with the slider: at 0 % they vanish.
    zero = grafana.substitute(panels["Estimated Additional Savings Due to Performance"]
                              ["targets"][0]["expr"], values | {"nih": "0"})
    assert float(fleet.prom.query(zero, at=end)[0]["value"][1]) == 0


def test_measured_mode_equals_the_measured_model(fleet):
    """With 'NIH reduction from' = measured, the NIH stat and the savings equal
    `nitrometer savings --measured` (at the same min hosts and hours)."""
    dash = grafana.dashboards()["dashboards/nitrometer-graviton-savings.json"]
    start = fleet.started
    end = start + math.floor(time.time() - start)
    values = grafana.default_values(dash) | {"nih": NIH_PCT, "nih_source": "measured"}
    values |= grafana.grafana_intervals(end - start, 1, 100)
    # the dashboard's defaults are the CLI's; a fleet of seconds needs a minimum of 0 hours
    assert values["min_hosts"] == "1" and values["min_hours"] == "1"
    values["min_hours"] = "0"

    model = subprocess.run(
        [sys.executable, "-m", "nitrometer", "savings", "--prometheus", fleet.prom.url,
         "--start", str(start), "--end", str(end), "--measured", "--min-hours", "0",
         "-o", "json", "--no-progress"], capture_output=True, text=True)
    assert model.returncode == 0, model.stderr
    doc = json.loads(model.stdout)
    measured, totals = doc["measured"], doc["totals"]
    # the simulated agents export CPU counters: the figure is at equal load
    assert measured["basis"] == "equal_load"

    panels = {p["title"]: p for p in grafana.data_panels(dash)}

    def shown(title: str, ref: int = 0) -> float:
        expr = grafana.substitute(panels[title]["targets"][ref]["expr"], values)
        result = fleet.prom.query(expr, at=end)
        assert len(result) == 1, f"{title}: {result}"
        return float(result[0]["value"][1])

    nih_stat = "NIH reduction: measured and assumed"
    assert shown(nih_stat, 0) == pytest.approx(measured["nih_reduction_pct"], rel=1e-6)
    # the JSON carries 6 decimals; one host a side: no spread, so the interval closes on
    # the figure
    low, high = shown(nih_stat, 1), shown(nih_stat, 2)
    assert low == pytest.approx(measured["nih_reduction_pct"], rel=1e-6)
    assert high == pytest.approx(measured["nih_reduction_pct"], rel=1e-6)
    assert shown(nih_stat, 3) == float(NIH_PCT)
    for title, key in STATS.items():
        assert shown(title) == pytest.approx(totals[key], rel=1e-3, abs=ABS_TOLERANCE), title
    additional = shown("Estimated Additional Savings Due to Performance")
    assert additional == pytest.approx(
        totals["graviton_cost"] * measured["nih_reduction_pct"] / 100, rel=1e-3)
    # the per-job table lists the CLI's groups with the same figures
    table = panels["Measured NIH reduction by job"]["targets"]
    for ref, basis in ((0, "equal_load"), (3, "raw")):
        rows = fleet.prom.query(grafana.substitute(table[ref]["expr"], values), at=end)
        by_job = {r["metric"]["job"]: float(r["value"][1]) for r in rows}
        assert by_job == pytest.approx({g["labels"]["job"]: g[basis]["nih_reduction_pct"]
                                        for g in measured["groups"]}, rel=1e-6), basis
    # a threshold no side meets leaves the measured savings empty, not at the slider's value
    strict = grafana.substitute(
        panels["Estimated Additional Savings Due to Performance"]["targets"][0]["expr"],
        values | {"min_hosts": "10"})
    assert fleet.prom.query(strict, at=end) == []
