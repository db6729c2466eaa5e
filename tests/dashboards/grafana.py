"""Reading generated dashboards the way Grafana does: panels, queries, variable substitution."""

from __future__ import annotations

import json
import re

from nitrometer.dashboards import cli

# Variables Grafana defines itself.
BUILTINS = {"__range", "__range_s", "__range_ms", "__interval", "__interval_ms",
            "__rate_interval", "__from", "__to", "__dashboard", "__org", "__user"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def dashboards() -> dict[str, dict]:
    return {path: json.loads(text) for path, text in cli.render().items()
            if path.endswith(".json")}


def data_panels(dash: dict) -> list[dict]:
    """Every panel that shows data: rows are only headings."""
    out = []
    for panel in dash["panels"]:
        out += [p for p in panel.get("panels", [])]
        if panel["type"] != "row":
            out.append(panel)
    return out


def variable_names(dash: dict) -> set[str]:
    return {v["name"] for v in dash["templating"]["list"]}


def referenced(text: str) -> set[str]:
    return {next(g for g in match.groups() if g) for match in VARIABLE.finditer(text)}


def all_queries(dash: dict) -> list[tuple[str, dict]]:
    """(where, target-like dict with expr) for panel targets, annotations and variables."""
    out = [(f"{p['title']}/{t['refId']}", t) for p in data_panels(dash) for t in p["targets"]]
    out += [(f"annotation {a['name']}", a) for a in dash["annotations"]["list"] if "expr" in a]
    return out


def duration(seconds: float) -> str:
    return f"{max(int(seconds), 1)}s"


def grafana_intervals(range_s: float, scrape_s: float, max_points: int) -> dict[str, str]:
    """Grafana's built-ins: $__interval is range / points, at least the scrape interval;
    $__rate_interval is max($__interval + scrape, 4 x scrape)."""
    interval = max(range_s / max_points, scrape_s)
    rate_interval = max(interval + scrape_s, 4 * scrape_s)
    return {"__range": duration(range_s), "__range_s": str(int(range_s)),
            "__range_ms": str(int(range_s * 1000)), "__interval": duration(interval),
            "__interval_ms": str(int(interval * 1000)), "__rate_interval": duration(rate_interval)}


def default_values(dash: dict) -> dict[str, str]:
    """Each template variable at its default; "All" becomes its allValue regex."""
    values = {}
    for var in dash["templating"]["list"]:
        current = (var.get("current") or {}).get("value")
        if var.get("includeAll") and current in (None, "All", "$__all"):
            values[var["name"]] = var["allValue"]
        elif current is not None:
            values[var["name"]] = str(current)
    return values


def substitute(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = next(g for g in match.groups() if g)
        return values[name]
    return VARIABLE.sub(replace, text)


def regex_value(value: str) -> str:
    """A selected value in a =~ matcher, escaped as Grafana does (once for the regex, once
    for the PromQL string)."""
    return re.escape(value).replace("\\", "\\\\")
