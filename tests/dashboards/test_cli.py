"""`nitrometer dashboards`: the files it writes, the copies kept in deploy/grafana, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from nitrometer.dashboards import cli

REPO = Path(__file__).resolve().parents[2]
KEPT = REPO / "deploy" / "grafana"


def nitrometer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nitrometer", "dashboards", *args],
                          capture_output=True, text=True, cwd=REPO)


def files_under(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_writes_dashboards_rules_and_provisioning(tmp_path):
    result = nitrometer("--out", str(tmp_path), "--prometheus-url", "http://prom:9090",
                        "--dashboards-path", "/srv/dash")
    assert result.returncode == 0, result.stderr
    written = files_under(tmp_path)
    assert set(written) == set(cli.render())
    datasources = yaml.safe_load(written["provisioning/datasources/nitrometer.yaml"])
    assert datasources["datasources"][0]["url"] == "http://prom:9090"
    assert datasources["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load(written["provisioning/dashboards/nitrometer.yaml"])
    assert providers["providers"][0]["options"]["path"] == "/srv/dash"


def test_kept_copies_are_not_stale(tmp_path):
    out = tmp_path  # `make dashboards` rewrites the kept copies; this only compares
    result = nitrometer("--out", str(out))
    assert result.returncode == 0, result.stderr
    fresh, kept = files_under(out), files_under(KEPT)
    stale = sorted(path for path in fresh if kept.get(path) != fresh[path])
    assert not stale, f"deploy/grafana is stale in {stale}: run `make dashboards`"


def test_alert_threshold_reaches_the_rules():
    alerts = yaml.safe_load(cli.render(p99_seconds=0.25)[cli.ALERTING_FILE])
    p99 = next(r for r in alerts["groups"][0]["rules"] if r["alert"] == "NitrometerHighP99Latency")
    assert p99["expr"].endswith("> 0.25")


def test_bad_input_is_one_line(tmp_path):
    for args in (["--alert.p99-seconds", "0"], ["--alert.p99-seconds", "nan"],
                 ["--scrape-interval", "fast"]):
        result = nitrometer("--out", str(tmp_path / "x"), *args)
        assert result.returncode == 2, args
        assert result.stderr.startswith("nitrometer: ") and result.stderr.count("\n") == 1
    a_file = tmp_path / "file"
    a_file.write_text("")
    result = nitrometer("--out", str(a_file))
    assert result.returncode == 2 and "not a directory" in result.stderr
    assert result.stderr.count("\n") == 1
