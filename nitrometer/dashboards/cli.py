"""`nitrometer dashboards --out DIR`: the Grafana dashboards, Prometheus rules and provisioning.

DIR/dashboards/*.json      import into Grafana, or let the provisioning below load them
DIR/rules/*.yml            add to Prometheus' rule_files (the fleet dashboard needs them)
DIR/provisioning/          copy over Grafana's provisioning directory
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import yaml

from nitrometer.dashboards import common, device, fleet, rules, savings
from nitrometer.errors import ConfigError, NitrometerError

DASHBOARDS = {"device": device, "fleet": fleet, "graviton-savings": savings}
RECORDING_FILE = "rules/nitrometer-recording.yml"
ALERTING_FILE = "rules/nitrometer-alerts.yml"
DEFAULT_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/nitrometer"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory to write dashboards/, rules/ and provisioning/ into")
    parser.add_argument("--prometheus-url", default="http://localhost:9090",
                        help="URL of the Prometheus the provisioned datasource points at "
                             "(default %(default)s)")
    parser.add_argument("--scrape-interval", default="15s",
                        help="Prometheus scrape interval, which Grafana needs for "
                             "$__rate_interval (default %(default)s)")
    parser.add_argument("--dashboards-path", default=DEFAULT_DASHBOARDS_PATH,
                        help="where Grafana will find the dashboard JSON files "
                             "(default %(default)s)")
    parser.add_argument("--alert.p99-seconds", dest="p99_seconds", type=float,
                        default=rules.P99_THRESHOLD_SECONDS,
                        help="p99 latency above which a device alerts (default %(default)s)")


def provisioning(prometheus_url: str, scrape_interval: str, dashboards_path: str) -> dict:
    datasources = {"apiVersion": 1, "datasources": [{
        "name": common.PROVISIONED_DATASOURCE_NAME,
        "uid": common.PROVISIONED_DATASOURCE_UID,
        "type": "prometheus", "access": "proxy", "url": prometheus_url,
        "jsonData": {"timeInterval": scrape_interval, "httpMethod": "POST"},
        "editable": True,
    }]}
    providers = {"apiVersion": 1, "providers": [{
        "name": "nitrometer", "folder": "nitrometer", "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
    }]}
    dump = lambda doc: yaml.safe_dump(doc, sort_keys=False)  # noqa: E731
    return {"provisioning/datasources/nitrometer.yaml": dump(datasources),
            "provisioning/dashboards/nitrometer.yaml": dump(providers)}


def render(*, prometheus_url: str = "http://localhost:9090", scrape_interval: str = "15s",
           dashboards_path: str = DEFAULT_DASHBOARDS_PATH,
           p99_seconds: float = rules.P99_THRESHOLD_SECONDS) -> dict[str, str]:
    """Every generated file: relative path -> text."""
    if not math.isfinite(p99_seconds) or p99_seconds <= 0:
        raise ConfigError(f"--alert.p99-seconds must be a positive number of seconds, "
                          f"not {p99_seconds:g}")
    if not _is_duration(scrape_interval):
        raise ConfigError(f"--scrape-interval must be a duration such as 15s or 1m, "
                          f"not {scrape_interval!r}")
    files = {f"dashboards/nitrometer-{name}.json": common.to_json(module.build())
             for name, module in DASHBOARDS.items()}
    files[RECORDING_FILE] = rules.to_yaml(rules.recording_rules())
    files[ALERTING_FILE] = rules.to_yaml(rules.alerting_rules(p99_threshold=p99_seconds))
    files.update(provisioning(prometheus_url, scrape_interval, dashboards_path))
    return files


def _is_duration(text: str) -> bool:
    number, unit = text[:-1], text[-1:]
    if text.endswith("ms"):
        number, unit = text[:-2], "ms"
    return number.isdigit() and int(number) > 0 and unit in ("ms", "s", "m", "h")


def write(out: Path, files: dict[str, str]) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    try:
        for relative, text in files.items():
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    except OSError as exc:
        raise NitrometerError(f"cannot write {exc.filename}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    files = render(prometheus_url=args.prometheus_url, scrape_interval=args.scrape_interval,
                   dashboards_path=args.dashboards_path, p99_seconds=args.p99_seconds)
    out = Path(args.out)
    write(out, files)
    print(f"wrote {len(files)} files to {out}")
    return 0
