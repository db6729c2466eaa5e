"""Sanity of the generated dashboard JSON: what Grafana needs to import and render it."""

from __future__ import annotations

import itertools

import pytest

from nitrometer import metrics as m
from nitrometer.dashboards import device, fleet, rules, savings
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
    texts += [p["title"] + " " + p["description"] for p in grafana.data_panels(dash)]
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
                 m.EXCEEDED_NOW, m.PEAK_IOPS, m.COST, m.GRAVITON_COST, m.NORMALIZED_SECONDS,
                 m.INSTANCE_SECONDS):
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


def test_heatmaps_are_the_current_panel_one_per_kind():
    dash = DASHBOARDS["dashboards/nitrometer-device.json"]
    heatmaps = [p for p in grafana.data_panels(dash) if p["type"] == "heatmap"]
    kinds = {}
    for panel in heatmaps:
        options = panel["options"]
        # The current panel over Prometheus buckets, not the legacy Angular one.
        assert options["calculate"] is False and "yAxis" in options and "cellValues" in options
        assert options["yAxis"]["unit"] == "s" and "dataFormat" not in panel
        (query,) = panel["targets"]
        assert query["format"] == "heatmap" and query["expr"].startswith("sum by (le) (")
        # EBS and instance-store buckets never land in one panel.
        pinned = [k for k in ("ebs", "instance_store") if f'kind="{k}"' in query["expr"]]
        assert len(pinned) == 1, panel["title"]
        histogram = m.IO_SIZE_LATENCY if m.IO_SIZE_LATENCY in query["expr"] else m.LATENCY
        kinds.setdefault(histogram, set()).add(pinned[0])
    assert kinds == {m.LATENCY: {"ebs", "instance_store"}, m.IO_SIZE_LATENCY: {"instance_store"}}
    # One IO-size heatmap per band and op: repeated over the io_size variable.
    bands = [p for p in heatmaps if m.IO_SIZE_LATENCY in p["targets"][0]["expr"]]
    assert len(bands) == 2 and all(p["repeat"] == "io_size" for p in bands)


def test_device_health_panels_each_mean_one_thing():
    dash = DASHBOARDS["dashboards/nitrometer-device.json"]
    panels = {p["title"]: " ".join(t["expr"] for t in p["targets"])
              for p in grafana.data_panels(dash)}
    assert "Device health" not in panels
    where = {name: [title for title, exprs in panels.items() if name in exprs]
             for name in (m.DEVICE_ERRORS, m.DEVICE_UP, m.COUNTER_RESETS, m.GLITCHES,
                          m.LAYOUT_CHANGES, m.TICK_ERRORS)}
    assert where[m.DEVICE_ERRORS] == ["Read errors by reason"]
    assert where[m.DEVICE_UP] == ["Device up"]
    breaks = "Counter resets, glitches and layout changes"
    assert where[m.COUNTER_RESETS] == where[m.GLITCHES] == where[m.LAYOUT_CHANGES] == [breaks]
    assert where[m.TICK_ERRORS] == ["Failed ticks and overruns"]


def test_headroom_panels_divide_by_the_limit_gauges():
    device_dash = DASHBOARDS["dashboards/nitrometer-device.json"]
    shares = {p["title"]: p for p in grafana.data_panels(device_dash)
              if "% of" in p["title"]}
    gauges = {"Volume IOPS, % of provisioned": m.VOLUME_IOPS_LIMIT,
              "Volume throughput, % of provisioned": m.VOLUME_THROUGHPUT_LIMIT,
              "Instance IOPS, % of the instance limit": m.INSTANCE_IOPS_LIMIT,
              "Instance throughput, % of the instance limit": m.INSTANCE_THROUGHPUT_LIMIT}
    assert set(shares) == set(gauges)
    for title, gauge in gauges.items():
        panel = shares[title]
        assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
        assert all(gauge in t["expr"] and "> 0" in t["expr"] for t in panel["targets"])
    # The instance shares are over every device of the kind (no device filter): per op
    # where the limit is published per op (instance-store IOPS), else reads and writes
    # together against the total.
    ops = {"Instance IOPS, % of the instance limit": ["read", "write", "total"],
           "Instance throughput, % of the instance limit": ["total"]}
    for title, expected in ops.items():
        exprs = [t["expr"] for t in shares[title]["targets"]]
        assert [next(op for op in ("read", "write", "total") if f'op="{op}"' in e)
                for e in exprs] == expected
        assert not any("$device" in e for e in exprs)
    fleet_dash = DASHBOARDS["dashboards/nitrometer-fleet.json"]
    exprs = " ".join(q["expr"] for _, q in grafana.all_queries(fleet_dash))
    assert rules.VOLUME_UTILISATION in exprs and rules.INSTANCE_UTILISATION in exprs


def panel_units(panel: dict) -> list[str]:
    """Where Grafana reads a panel's unit: the field config, or a heatmap's axis and cells."""
    if panel["type"] == "heatmap":
        options = panel["options"]
        return [options["yAxis"].get("unit", ""), options["cellValues"].get("unit", "")]
    return [panel.get("fieldConfig", {}).get("defaults", {}).get("unit") or ""]


@PARAMS
def test_every_panel_has_a_unit(path):
    for panel in grafana.data_panels(DASHBOARDS[path]):
        assert all(panel_units(panel)), (panel["title"], panel_units(panel))


@PARAMS
def test_no_panel_keeps_grafanalib_default_threshold(path):
    """grafanalib's default steps turn red at 80, whatever the unit: set on purpose or not
    at all."""
    for panel in grafana.data_panels(DASHBOARDS[path]):
        steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {})
        values = [s.get("value") for s in steps.get("steps", [])]
        if panel_units(panel) == ["percentunit"]:
            assert all(v in (None, "null") or v <= 1 for v in values), (panel["title"], values)
        assert 80.0 not in values, panel["title"]
        legacy = panel.get("options", {}).get("fieldOptions", {}).get("thresholds", [])
        assert 80.0 not in [s.get("value") for s in legacy], panel["title"]


def test_peak_latency_is_a_p99_gauge():
    [panel] = [p for p in grafana.data_panels(DASHBOARDS["dashboards/nitrometer-device.json"])
               if m.PEAK_LATENCY_P99 in p["targets"][0]["expr"]]
    assert panel["title"] == "Peak p99 latency" and "quantile" not in panel["targets"][0]["expr"]
