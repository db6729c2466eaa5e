"""The generated rule files pass `promtool check rules` and the unit tests in rules_test.yml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from nitrometer import metrics as m
from nitrometer.dashboards import cli, rules
from tests.support.prometheus import require

HERE = Path(__file__).resolve().parent


def write_rules(tmp_path: Path) -> list[Path]:
    files = cli.render()
    paths = []
    for relative in (cli.RECORDING_FILE, cli.ALERTING_FILE):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[relative])
        paths.append(path)
    return paths


def promtool(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([require("promtool"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True)


def test_promtool_check_rules_is_clean(tmp_path):
    result = promtool("check", "rules", *write_rules(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "WARNING" not in result.stdout + result.stderr


def test_promtool_unit_tests_pass(tmp_path):
    write_rules(tmp_path)
    shutil.copy(HERE / "rules_test.yml", tmp_path / "rules_test.yml")
    result = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_cover_every_alert():
    tested = {case["alertname"]
              for test in yaml.safe_load((HERE / "rules_test.yml").read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    alerts = {r["alert"] for g in rules.alerting_rules()["groups"] for r in g["rules"]}
    assert alerts == tested


def test_recording_rule_names_follow_level_metric_operation():
    recorded = [r["record"] for g in rules.recording_rules()["groups"] for r in g["rules"]
                if g["name"] != rules.NIH_GROUP]
    for name in recorded:
        level, metric, operation = name.split(":")
        assert level and operation.endswith(rules.WINDOW), name
        assert metric.startswith("ec2_nvme_"), name
    # The fleet dashboard reads these, so the names must not silently change shape.
    assert rules.INSTANCE_RATES[m.READ_OPS] in recorded
    assert rules.TYPE_LATENCY_QUANTILE in recorded
