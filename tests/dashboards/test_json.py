"""Sanity of the generated dashboard JSON: what Grafana needs to import and render it."""

from __future__ import annotations

import itertools

import pytest

from nitrometer import metrics as m
from nitrometer.dashboards import device, fleet, savings
from tests.dashboards import grafana

DASHBOARDS = grafana.dashboards()
PARAMS = pytest.mark.parametrize("path", sorted(DASHBOARDS))


def test_three_dashboards_with_unique_uids_and_titles():
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert sorted(uids) == sorted([device.UID, fleet.UID, savings.UID])
    assert len({d["title"] for d in DASHBOARDS.values()}) == 3


@PARAMS
def test_panel_ids_are_unique(path):
    panels = DASHBOARDS[path]["panels"]
    ids = [p["id"] for p in panels] + [n["id"] for p in panels for n in p.get("panels", [])]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids))


@PARAMS
def test_every_panel_has_datasource_description_and_queries(path):
    for panel in grafana.data_panels(DASHBOARDS[path]):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["description"] and len(panel["description"]) > 30, panel["title"]
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == panel["datasource"]
            assert t["expr"].strip(), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


@PARAMS
def test_every_referenced_variable_exists(path):
    dash = DASHBOARDS[path]
    defined = grafana.variable_names(dash) | grafana.BUILTINS
    texts = [q["expr"] for _, q in grafana.all_queries(dash)]
    texts += [p["title"] + p["description"] for p in grafana.data_panels(dash)]
    texts += [v["query"] for v in dash["templating"]["list"] if isinstance(v["query"], str)]
    for text in texts:
        assert grafana.referenced(text) <= defined, text
    assert "datasource" in grafana.variable_names(dash)


@PARAMS
def test_variables_referenced_by_each_other_are_defined_first(path):
    seen = set(grafana.BUILTINS)
    for var in DASHBOARDS[path]["templating"]["list"]:
        assert grafana.referenced(str(var["query"])) <= seen, var["name"]
        seen.add(var["name"])


@PARAMS
def test_grid_positions_do_not_overlap_and_fit(path):
    boxes = [(p["title"], p["gridPos"]) for p in DASHBOARDS[path]["panels"]]
    for title, pos in boxes:
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, title
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                 or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
        assert apart, f"{ta} overlaps {tb}"


def test_queries_use_metric_names_from_the_contract():
    names = {v for k, v in vars(m).items() if k.isupper() and isinstance(v, str)}
    exprs = " ".join(q["expr"] for d in DASHBOARDS.values() for _, q in grafana.all_queries(d))
    used = {n for n in names if n.startswith(("ec2_", "nitrometer_")) and n in exprs}
    for must in (m.LATENCY, m.IO_SIZE_LATENCY, m.EXCEEDED_SECONDS, m.EXCEEDED_EPISODES,
                 m.EXCEEDED_NOW, m.PEAK_IOPS, m.COST, m.GRAVITON_COST, m.NORMALIZED_HOURS):
        assert must in used


def test_savings_dashboard_has_the_nih_slider_and_three_stats():
    dash = DASHBOARDS["dashboards/nitrometer-graviton-savings.json"]
    nih = next(v for v in dash["templating"]["list"] if v["name"] == "nih")
    assert [o["value"] for o in nih["options"]] == [str(i) for i in range(41)]
    assert nih["current"]["value"] == "10"
    titles = {p["title"] for p in grafana.data_panels(dash) if p["type"] == "stat"}
    assert {"Potential Graviton Base Savings", "Estimated Additional Savings Due to Performance",
            "Total Potential Graviton Savings"} <= titles


def test_device_dashboard_marks_exceeded_episodes():
    dash = DASHBOARDS["dashboards/nitrometer-device.json"]
    annotation = next(a for a in dash["annotations"]["list"] if "expr" in a)
    assert m.EXCEEDED_NOW in annotation["expr"] and m.EXCEEDED_EPISODES in annotation["expr"]
    assert grafana.variable_names(dash) >= {"datasource", "instance", "device", "kind"}
