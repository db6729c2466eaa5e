"""What the three dashboards share: the datasource, variables, layout and query helpers."""

from __future__ import annotations

import json

import attr  # grafanalib's panels are attrs classes
from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from nitrometer import metrics as m

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The uid the provisioning file gives its Prometheus datasource; dashboards default to it.
PROVISIONED_DATASOURCE_UID = "nitrometer-prometheus"
PROVISIONED_DATASOURCE_NAME = "Prometheus (nitrometer)"

# Prometheus adds these to every series it scrapes: together they name one agent.
TARGET = "instance, job"


def datasource_variable() -> g.Template:
    return g.Template(
        name="datasource", label="Data source", query="prometheus", type="datasource",
        default=PROVISIONED_DATASOURCE_NAME, refresh=g.REFRESH_ON_DASHBOARD_LOAD,
    )


def query_variable(name: str, label: str, metric: str, label_name: str,
                   selector: str = "", include_all: bool = True) -> g.Template:
    """A multi-select variable over a label's values; "All" matches anything (used with =~)."""
    query = f"label_values({metric}{{{selector}}}, {label_name})"
    return g.Template(
        name=name, label=label, query=query, dataSource=DATASOURCE, type="query",
        includeAll=include_all, multi=include_all, allValue=".*" if include_all else None,
        default="All" if include_all else None, refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
        sort=g.SORT_ALPHA_ASC,
    )


def custom_variable(name: str, label: str, values: list[int | str], default) -> g.Template:
    return g.Template(name=name, label=label, type="custom", default=str(default),
                      query=",".join(str(v) for v in values))


def info_join(expr: str, labels: str, window: str, info_selector: str = "") -> str:
    """expr with instance labels (type, family, arch...) copied from the agent's info gauge.

    One info series per agent is picked even if the type changed within the window, so a
    resized instance cannot make the join fail.
    """
    info = f"topk by ({TARGET}) (1, last_over_time({m.INSTANCE_INFO}{{{info_selector}}}[{window}]))"
    return f"({expr}) * on ({TARGET}) group_left ({labels}) {info}"


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False,
           fmt: str = g.TIME_SERIES_TARGET_FORMAT) -> g.Target:
    return g.Target(expr=expr, legendFormat=legend, refId=ref, instant=instant, format=fmt,
                    datasource=DATASOURCE, intervalFactor=1)


def targets(*specs: tuple[str, str], instant: bool = False,
            fmt: str = g.TIME_SERIES_TARGET_FORMAT) -> list[g.Target]:
    """(expr, legend) pairs as targets A, B, C..."""
    return [target(expr, legend, chr(ord("A") + i), instant=instant, fmt=fmt)
            for i, (expr, legend) in enumerate(specs)]


@attr.s
class Heatmap(g.Panel):
    """Grafana's heatmap panel (10 and later) over buckets Prometheus already counted.

    grafanalib's Heatmap writes the legacy Angular panel, which newer Grafana no longer
    renders; this writes the options the current panel saves.
    """

    unit = attr.ib(default="s")  # of the buckets' bounds (the y axis)
    cell_unit = attr.ib(default="short")  # of a cell's value

    def to_json_data(self):
        return self.panel_json({
            "type": "heatmap",
            "options": {
                "calculate": False,  # the series are histogram buckets already
                "cellGap": 1,
                "cellValues": {"unit": self.cell_unit},
                "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential",
                          "exponent": 0.5, "steps": 64, "fill": "dark-orange",
                          "reverse": False},
                "exemplars": {"color": "rgba(255,0,255,0.7)"},
                "filterValues": {"le": 1e-9},  # empty buckets stay blank
                "legend": {"show": True},
                "rowsFrame": {"layout": "auto"},
                "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
                "yAxis": {"axisPlacement": "left", "reverse": False, "unit": self.unit,
                          "decimals": 0},
                "showValue": "never",
            },
            "fieldConfig": {"defaults": {"custom": {
                "hideFrom": {"legend": False, "tooltip": False, "viz": False},
                "scaleDistribution": {"type": "linear"},
            }}, "overrides": []},
        })


class Grid:
    """Places panels left to right in rows of 24 columns, so positions never overlap."""

    def __init__(self) -> None:
        self.panels: list = []
        self.x = self.y = self.row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(g.RowPanel(title=title, gridPos=g.GridPos(h=1, w=24, x=0, y=self.y)))
        self.y += 1

    def add(self, panel, w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        panel.gridPos = g.GridPos(h=h, w=w, x=self.x, y=self.y)
        panel.dataSource = DATASOURCE
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = self.row_height = 0


def dashboard(title: str, uid: str, description: str, tags: list[str], grid: Grid,
              variables: list[g.Template], annotations: list[dict] = ()) -> g.Dashboard:
    builtin = {
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts", "type": "dashboard",
    }
    return g.Dashboard(
        title=title, uid=uid, description=description, tags=["nitrometer", *tags],
        panels=grid.panels, templating=g.Templating(list=variables),
        annotations=g.Annotations(list=[builtin, *annotations]),
        time=g.Time("now-6h", "now"), refresh="1m", timezone="browser",
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR, schemaVersion=37,
    ).auto_panel_ids()


def to_json(dash: g.Dashboard) -> str:
    return json.dumps(dash.to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"
