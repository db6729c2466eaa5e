"""A single self-contained HTML report: inline CSS and SVG charts, no scripts, opens offline."""

from __future__ import annotations

from html import escape

from nitrometer.savings.report import (
    EFFORT_HEADERS,
    EXCLUSION_HEADERS,
    MEASURED_GROUP_HEADERS,
    STORAGE_FIT_HEADERS,
    effort_rows,
    headline_line,
    latest_month_line,
    measured_group_rows,
    money,
    nih_line,
    provenance_lines,
    storage_cells,
    storage_fit_rows,
    summary_rows,
    unpriced_line,
)

COLORS = ("#2f6fb0", "#e58a2b", "#6a9e3f", "#8e5ea2")
CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:.9em}.warn{color:#a33}
svg text{font-size:12px;fill:#333}
"""


def _bars(chart_id: str, title: str, labels: list[str], series: list[tuple[str, list[float]]],
          fmt=money, stacked: bool = False, height_per_label: int = 26) -> str:
    """Horizontal bars, one band per label; series side by side, or stacked."""
    label_width, width, right = 140, 900, 110
    plot = width - label_width - right
    per_band = height_per_label if stacked else height_per_label * max(len(series), 1) // 1.4
    height = int(40 + per_band * len(labels) + 30)
    if stacked:
        extents = [sum(max(v[i], 0) for _, v in series) for i in range(len(labels))]
    else:
        extents = [max(v[i] for _, v in series) for i in range(len(labels))]
    top = max([*extents, 0]) or 1.0
    parts = [f'<svg id="{chart_id}" class="chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    bar_h = (per_band - 6) / (1 if stacked else len(series))
    for i, label in enumerate(labels):
        y0 = 30 + i * per_band
        parts.append(f'<text x="{label_width - 8}" y="{y0 + per_band / 2 + 4:.1f}" '
                     f'text-anchor="end">{escape(str(label))}</text>')
        offset = 0.0
        for s, (name, values) in enumerate(series):
            value = max(values[i], 0)
            w = plot * value / top
            x = label_width + (offset if stacked else 0)
            y = y0 + (0 if stacked else s * bar_h)
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
                         f'height="{bar_h:.1f}" fill="{COLORS[s % len(COLORS)]}">'
                         f"<title>{escape(f'{label} {name}: {fmt(values[i])}')}</title></rect>")
            if not stacked:
                parts.append(f'<text x="{x + w + 4:.1f}" y="{y + bar_h - 3:.1f}">'
                             f"{escape(fmt(values[i]))}</text>")
            offset += w
        if stacked:
            total = sum(v[i] for _, v in series)
            parts.append(f'<text x="{label_width + offset + 4:.1f}" '
                         f'y="{y0 + bar_h - 3:.1f}">{escape(fmt(total))}</text>')
    for s, (name, _) in enumerate(series):
        x = label_width + s * 190
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" '
                     f'fill="{COLORS[s % len(COLORS)]}"/><text x="{x + 16}" y="16">'
                     f"{escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _hours(value) -> str:
    return f"{value:,.1f}"


def _group_rows(rows: list[dict], keys: list[str], storage: bool = False) -> list[list]:
    return [[*(r[k] for k in keys), *(storage_cells(r) if storage else []),
             _hours(r["hours"]), _hours(r["nih"]), money(r["cost"]),
             money(r["graviton_cost"]), money(r["base_savings"]), money(r["additional_savings"]),
             money(r["total_savings"]), f"{r['savings_pct']:.1f} %"] for r in rows]


GROUP_HEADERS = ["hours", "normalized hours", "current cost", "Graviton cost", "base savings",
                 "additional savings", "total savings", "% of cost"]


def render_html(doc: dict) -> str:
    t = doc["totals"]
    pct = doc["nih_reduction_pct"]
    families = doc["by_family"][:20]
    months = [m for m in doc["by_month"] if m["month"]]
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<title>Graviton savings</title>", f"<style>{CSS}</style></head><body>",
           "<h1>Graviton savings in normalized instance hours</h1>",
           f"<p>Generated {escape(doc['generated_at'])} from "
           f"{escape(doc['inputs'].get('kind', ''))}: "
           f"{escape(', '.join(map(str, doc['inputs'].get('paths', []))))}</p>",
           f"<p><strong>{escape(nih_line(doc))}</strong></p>",
           "<ul class=\"note\">", *(f"<li>{escape(line)}</li>" for line in provenance_lines(doc)),
           "</ul>",
           _table(["", ""], summary_rows(doc)),
           f"<p class=\"note\">{escape(headline_line(doc))}</p>"]
    if unpriced_line(doc):
        out.append(f"<p><strong>{escape(unpriced_line(doc))}</strong></p>")
    if latest_month_line(doc):
        out.append(f"<p><strong>{escape(latest_month_line(doc))}</strong></p>")
    if doc["measured"]:
        out += [f"<h2>Measured NIH reduction by comparison group "
                f"({doc['measured']['confidence_pct']:g} % intervals)</h2>",
                _table(MEASURED_GROUP_HEADERS, measured_group_rows(doc["measured"])),
                *(f'<p class="note">{escape(n)}</p>' for n in doc["measured"]["notes"])]
    out += ["<h2>Savings implementation effort</h2>", _table(EFFORT_HEADERS, effort_rows(doc)),
            "<h2>Savings by family</h2>"]
    if families:
        out.append(_bars("chart-family", "Savings by family",
                         [f"{f['family']} → {f['target_family']}" for f in families],
                         [("base savings", [f["base_savings"] for f in families]),
                          (f"additional at {pct:g} %", [f["additional_savings"]
                                                        for f in families])], stacked=True))
    else:
        out.append('<p class="note">Nothing eligible.</p>')
    out.append("<h2>Cost and normalized hours by month</h2>")
    if months:
        labels = [m["month"] for m in months]
        out.append(_bars("chart-month-cost", "Cost by month", labels,
                         [("current cost", [m["cost"] for m in months]),
                          ("Graviton cost", [m["graviton_cost"] for m in months])]))
        out.append(_bars("chart-month-nih", "Normalized hours by month", labels,
                         [("normalized hours", [m["nih"] for m in months]),
                          (f"projected at {pct:g} %", [m["projected_nih"] for m in months])],
                         fmt=_hours))
    else:
        out.append('<p class="note">The input has no usage dates.</p>')
    out += ["<h2>Total savings by NIH reduction</h2>",
            _bars("chart-sweep", "Total savings by NIH reduction",
                  [f"{s['nih_reduction_pct']} %" for s in doc["sweep"]],
                  [("base savings", [s["base_savings"] for s in doc["sweep"]]),
                   ("additional savings", [s["additional_savings"] for s in doc["sweep"]])],
                  stacked=True, height_per_label=22),
            "<h2>Eligibility</h2>",
            _table(EXCLUSION_HEADERS,
                   [[e["reason"], f"{e['lines']:,}", _hours(e["hours"]), money(e["cost"]),
                     money(e["unused_fees"])] for e in doc["exclusions"]]),
            f"<p class=\"note\">Cost of every line: {money(t['all_cost'])}, of which unused "
            f"RI fees and Savings Plan commitment {money(t['all_unused_fees'])}.</p>",
            "<h2>By family</h2>",
            _table(["family", "Graviton family", *GROUP_HEADERS],
                   _group_rows(doc["by_family"], ["family", "target_family"])),
            "<h2>By instance type</h2>",
            _table(["instance type", "Graviton type", "local disk", "target local disk",
                    *GROUP_HEADERS],
                   _group_rows(doc["by_instance_type"], ["instance_type", "target_type"],
                               storage=True)),
            ]
    if doc.get("storage_fit") is not None:
        out += ["<h2>Storage fit: measured peaks against the Graviton type's limits</h2>",
                _table(STORAGE_FIT_HEADERS, storage_fit_rows(doc))]
    out += [f'<p class="warn">warning: {escape(w)}</p>' for w in doc["warnings"]]
    out.append('<p class="note">Base savings = current cost − Graviton rate (same operation, '
               "same purchase option) × hours; "
               "additional savings = Graviton cost × NIH reduction (AWS Graviton Savings "
               "Dashboard method).</p></body></html>")
    return "\n".join(out)
