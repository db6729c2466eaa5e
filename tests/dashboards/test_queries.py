"""Every dashboard query, with its variables substituted as Grafana would, runs against a real
Prometheus that scraped simulated agents, and returns data of the shape the panel expects."""

from __future__ import annotations

import math
import re
import time

import pytest

from nitrometer import metrics as m
from tests.dashboards import grafana

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

DASHBOARDS = grafana.dashboards()
SCRAPE_S = 1
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# Counters that only exist once something went wrong; the simulated agents have no errors
# (test_health_queries runs the panels that show them against a failing device).
# The measured NIH rules over a rolling hour need an instance hour a side (the one
# definition's minimum); a fleet of seconds has none: nih_rules_test.yml tests them on an hour.
MAY_BE_EMPTY = (m.DEVICE_ERRORS, m.GLITCHES, ":nitrometer_nih_")


def run_query(fleet, dash: dict, query: dict, max_points: int) -> tuple[list, str]:
    end = time.time()
    range_s = end - fleet.started
    values = grafana.default_values(dash) | grafana.grafana_intervals(range_s, SCRAPE_S, max_points)
    if "min_hours" in values:
        values["min_hours"] = "0"  # the fleet has run seconds, not the default hour
    expr = grafana.substitute(query["expr"], values)
    assert not grafana.referenced(expr), expr
    if query.get("instant"):
        return fleet.prom.query(expr, at=end), expr
    step = max(range_s / max_points, SCRAPE_S)
    return fleet.prom.query_range(expr, fleet.started, end, step), expr


def numbers(series: list) -> list[float]:
    points = [s["value"] for s in series if "value" in s]
    points += [p for s in series for p in s.get("values", [])]
    return [float(v) for _, v in points]


def check_shape(where: str, query: dict, series: list, expr: str, panel_type: str) -> None:
    assert series or any(name in expr for name in MAY_BE_EMPTY), f"{where}: no data\n{expr}"
    for s in series:
        labels = s["metric"]
        for label in LEGEND_LABEL.findall(query.get("legendFormat", "")):
            assert label in labels, f"{where}: legend needs {label}, got {labels}\n{expr}"
        assert "__name__" not in labels or panel_type == "table", f"{where}: raw series"
    if query.get("format") == "heatmap":
        assert all("le" in s["metric"] for s in series), where
    values = numbers(series)
    assert not series or any(math.isfinite(v) for v in values), f"{where}: only NaN\n{expr}"


@pytest.mark.parametrize("path", sorted(DASHBOARDS))
def test_every_panel_shows_data(fleet, path):
    dash = DASHBOARDS[path]
    for panel in grafana.data_panels(dash):
        total = 0
        for query in panel["targets"]:
            where = f"{path}: {panel['title']}/{query['refId']}"
            series, expr = run_query(fleet, dash, query, panel.get("maxDataPoints") or 100)
            check_shape(where, query, series, expr, panel["type"])
            total += len(series)
        only_failures = all(any(name in q["expr"] for name in MAY_BE_EMPTY)
                            for q in panel["targets"])
        assert total or only_failures, f"{path}: {panel['title']} is empty"


@pytest.mark.parametrize("path", sorted(DASHBOARDS))
def test_annotations_and_variables_resolve(fleet, path):
    dash = DASHBOARDS[path]
    for annotation in dash["annotations"]["list"]:
        if "expr" in annotation:
            series, expr = run_query(fleet, dash, annotation, 100)
            check_shape(f"annotation {annotation['name']}", annotation, series, expr, "")
    values = grafana.default_values(dash)
    for var in dash["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", str(var["query"]))
        if var["type"] != "query" or not match:
            continue
        selector, label = grafana.substitute(match[1], values), match[2]
        found = {s["metric"].get(label) for s in
                 fleet.prom.query(f"group by ({label}) ({selector})")}
        assert found - {None}, f"{path}: variable {var['name']} has no values"


def test_variables_narrow_the_device_dashboard(fleet):
    dash = DASHBOARDS["dashboards/nitrometer-device.json"]
    iops = next(p for p in grafana.data_panels(dash) if p["title"] == "IOPS")["targets"][0]
    one = grafana.default_values(dash) | {"instance": grafana.regex_value(fleet.targets["x86"]),
                                          "kind": "ebs"}
    one |= grafana.grafana_intervals(time.time() - fleet.started, SCRAPE_S, 100)
    series = fleet.prom.query(grafana.substitute(iops["expr"], one))
    assert {s["metric"]["instance"] for s in series} == {fleet.targets["x86"]}
    assert len(series) == 1
