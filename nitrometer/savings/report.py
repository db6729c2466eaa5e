"""The model's result as a JSON document (see docs/savings.md) and as terminal tables."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from tabulate import tabulate

from nitrometer.savings.model import Result

SCHEMA_VERSION = 1
EXCLUSION_HEADERS = ["reason", "lines", "hours", "cost", "of which unused fees"]
_GROUP_FIELDS = ["hours", "nih", "projected_nih", "cost", "graviton_cost", "base_savings",
                 "additional_savings", "total_savings", "savings_pct"]


def _clean(value):
    """JSON-safe scalars: numpy types to Python, NaN to None, money to cents."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


def _records(frame, fields: list[str]) -> list[dict]:
    return [{f: _clean(v) for f, v in zip(fields, row)}
            for row in frame[fields].itertuples(index=False)]


def to_document(result: Result, inputs: dict) -> dict:
    totals = {k: _clean(v) for k, v in result.totals().items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": inputs,
        "sources": result.sources,
        "generation": result.generation,
        "nih_reduction_pct": round(result.nih_reduction * 100, 6),
        "nih_reduction_source": "measured" if result.measured else "assumed",
        "measured": result.measured,
        "totals": totals,
        "exclusions": _records(result.exclusions(),
                               ["reason", "lines", "hours", "cost", "unused_fees"]),
        "by_family": _records(result.by_family(), ["family", "target_family", *_GROUP_FIELDS]),
        "by_instance_type": _records(result.by_type(),
                                     ["instance_type", "family", "target_type", *_GROUP_FIELDS]),
        "by_month": _records(result.by_month(), ["month", *_GROUP_FIELDS]),
        "sweep": [{k: _clean(v) for k, v in row.items()} for row in result.sweep()],
        "warnings": list(result.warnings),
    }


def money(value) -> str:
    if value is None:
        return "-"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _hours(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1f} %"


def provenance_lines(doc: dict) -> list[str]:
    sources = doc["sources"]
    prices = sources["prices"]
    lines = [f"prices: {prices['source']}, as of {prices['as_of']} "
             f"(regions: {', '.join(prices['regions'])})",
             f"normalization factors: {sources['normalization_factors']['source']}",
             f"x86 -> Graviton mapping: {sources['mapping']['source']}, "
             f"as of {sources['mapping']['as_of']}; target generation: {doc['generation']}"]
    if prices.get("user_price_file"):
        lines.append(f"user prices from {prices['user_price_file']} override the packaged ones")
    return lines


def nih_line(doc: dict) -> str:
    measured = doc["measured"]
    if not measured:
        return f"NIH reduction: {doc['nih_reduction_pct']:g} % (assumed)"
    g, x = measured["graviton"], measured["x86"]
    return (f"NIH reduction: {measured['nih_reduction_pct']:.2f} % measured from "
            f"{', '.join(measured['work_metrics'])} per normalized hour, "
            f"{measured['start']} to {measured['end']}: Graviton {g['hosts']} hosts / "
            f"{g['instance_hours']:,.1f} h, x86 {x['hosts']} hosts / "
            f"{x['instance_hours']:,.1f} h")


def render_table(doc: dict) -> str:
    t = doc["totals"]
    out = ["Graviton savings (normalized instance hours)", ""]
    out += [f"  {line}" for line in provenance_lines(doc)]
    out += ["", nih_line(doc), ""]
    summary = [
        ["eligible lines", f"{t['eligible_lines']:,} of {t['all_lines']:,}"],
        ["current cost (eligible)", money(t["cost"])],
        ["Graviton cost", money(t["graviton_cost"])],
        ["base savings", money(t["base_savings"])],
        [f"additional savings at {doc['nih_reduction_pct']:g} %",
         money(t["additional_savings"])],
        ["total savings", f"{money(t['total_savings'])} ({_pct(t['savings_pct'])})"],
        ["normalized hours now -> projected",
         f"{_hours(t['nih'])} -> {_hours(t['projected_nih'])}"],
    ]
    out += [tabulate(summary, tablefmt="plain"), "", "Eligibility"]
    out.append(tabulate([[e["reason"], f"{e['lines']:,}", _hours(e["hours"]), money(e["cost"]),
                          money(e["unused_fees"])] for e in doc["exclusions"]],
                        headers=EXCLUSION_HEADERS, disable_numparse=True,
                        colalign=("left", "right", "right", "right", "right")))
    out.append(f"  cost of every line: {money(t['all_cost'])}, of which unused RI fees and "
               f"Savings Plan commitment {money(t['all_unused_fees'])}")
    out += ["", "By family"]
    out.append(_group_table(doc["by_family"], ["family", "target_family"]))
    out += ["", "By instance type"]
    out.append(_group_table(doc["by_instance_type"], ["instance_type", "target_type"]))
    if any(row["month"] for row in doc["by_month"]):
        out += ["", "By month"]
        out.append(_group_table(doc["by_month"], ["month"]))
    out += ["", "Total savings by NIH reduction"]
    out.append(tabulate([[f"{s['nih_reduction_pct']} %", money(s["additional_savings"]),
                          money(s["total_savings"]), _pct(s["savings_pct"])]
                         for s in doc["sweep"]],
                        headers=["NIH reduction", "additional", "total", "% of cost"],
                        colalign=("right", "right", "right", "right")))
    for warning in doc["warnings"]:
        out.append(f"warning: {warning}")
    return "\n".join(out) + "\n"


def _group_table(rows: list[dict], keys: list[str]) -> str:
    if not rows:
        return "  (nothing eligible)"
    body = [[*(r[k] for k in keys), _hours(r["hours"]), _hours(r["nih"]), money(r["cost"]),
             money(r["graviton_cost"]), money(r["base_savings"]),
             money(r["additional_savings"]), money(r["total_savings"]), _pct(r["savings_pct"])]
            for r in rows]
    headers = [*keys, "hours", "norm. hours", "cost", "Graviton cost", "base", "additional",
               "total", "%"]
    return tabulate(body, headers=headers, disable_numparse=True,
                    colalign=("left",) * len(keys) + ("right",) * 8)
