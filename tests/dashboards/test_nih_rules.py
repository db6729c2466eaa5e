"""The measured NIH reduction rules: known values under `promtool test rules`, and names."""

from __future__ import annotations

import shutil

from nitrometer.dashboards import rules
from tests.dashboards.test_rules import HERE, promtool, write_rules


def test_promtool_unit_tests_of_the_nih_rules_pass(tmp_path):
    write_rules(tmp_path)
    shutil.copy(HERE / "nih_rules_test.yml", tmp_path / "nih_rules_test.yml")
    result = promtool("test", "rules", "nih_rules_test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_nih_rule_names_follow_level_metric_operation():
    group = next(g for g in rules.recording_rules()["groups"] if g["name"] == rules.NIH_GROUP)
    for rule in group["rules"]:
        level, metric, operation = rule["record"].split(":")
        assert level in ("job", "fleet"), rule["record"]
        assert metric.startswith("nitrometer_nih_"), rule["record"]
        assert operation.endswith(rules.NIH_WINDOW), rule["record"]
    # the savings dashboard reads these
    recorded = {r["record"] for r in group["rules"]}
    assert {rules.NIH_FLEET, *rules.NIH_FLEET_BOUNDS.values(),
            *rules.NIH_GROUP_REDUCTION.values()} <= recorded


def test_one_definition_of_minimums_grouping_and_interval():
    """The rules, the dashboard and `savings --measured` share their defaults (the figures
    themselves agree in tests/savings/test_measured_prometheus.py)."""
    from nitrometer.dashboards import nih
    from nitrometer.savings import measured

    assert nih.MIN_HOURS == measured.DEFAULT_MIN_HOURS == 1
    assert (nih.GROUP,) == measured.DEFAULT_GROUP_BY
    assert nih.z_score(rules.NIH_LEVEL) == measured.z_score(measured.DEFAULT_CONFIDENCE)
    query = nih.Query("[1h]")
    assert query.min_hours == "1" and query.min_hosts == "1"
    text = str(rules.recording_rules())
    assert repr(nih.z_score(rules.NIH_LEVEL)) in text
