"""The model's result as a JSON document (see docs/savings.md) and as terminal tables."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from tabulate import tabulate

from nitrometer.savings.model import Result
from nitrometer.savings.reference import UPDATE_COMMAND

SCHEMA_VERSION = 1
EXCLUSION_HEADERS = ["reason", "lines", "hours", "cost", "of which unused fees"]
_GROUP_FIELDS = ["hours", "nih", "projected_nih", "cost", "graviton_cost", "base_savings",
                 "additional_savings", "total_savings", "savings_pct"]


EFFORT_HEADERS = ["effort", "reason", "lines", "hours", "cost", "Graviton cost",
                  "total savings", "in headline"]
STORAGE_FIT_HEADERS = ["instance type", "Graviton type", "hosts", "storage", "measured peak",
                       "target limit", "headroom", "fits"]


def _clean(value):
    """JSON-safe scalars: numpy types to Python, NaN and infinities to None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


def _records(frame, fields: list[str]) -> list[dict]:
    return [{f: _clean(v) for f, v in zip(fields, row)}
            for row in frame[fields].itertuples(index=False)]


def _clean_tree(value):
    if isinstance(value, dict):
        return {k: _clean_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_tree(v) for v in value]
    return _clean(value)


def to_document(result: Result, inputs: dict) -> dict:
    totals = {k: _clean(v) for k, v in result.totals().items()}
    return _clean_tree({
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
                                     ["instance_type", "family", "target_type",
                                      "local_storage_gb", "target_local_storage_gb",
                                      *_GROUP_FIELDS]),
        "by_month": _records(result.by_month(), ["month", *_GROUP_FIELDS]),
        "sweep": [{k: _clean(v) for k, v in row.items()} for row in result.sweep()],
        "headline_efforts": list(result.efforts),
        "latest_month": result.latest_month(),
        "by_effort": _records(result.by_effort(),
                              ["effort", "reason", "lines", "hours", "cost", "graviton_cost",
                               "total_savings", "in_headline"]),
        "keep_local_storage": result.keep_local_storage,
        "storage_fit": result.storage_fit,
        "warnings": list(result.warnings),
    })


def money(value) -> str:
    if value is None:
        return "-"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _hours(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _gb(value) -> str:
    return "-" if value is None else ("EBS only" if value == 0 else f"{value:,.0f} GB")


def _storage_value(metric: str, value) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:,.1f} MB/s" if metric.startswith("throughput") else f"{value:,.0f}"


_CHECK_LABELS = {("instance_store", "read_iops"): "instance store read IOPS",
                 ("instance_store", "write_iops"): "instance store write IOPS",
                 ("instance_store", "throughput_bytes_per_second"): "instance store throughput",
                 ("ebs", "iops"): "EBS IOPS",
                 ("ebs", "throughput_bytes_per_second"): "EBS throughput"}


def storage_fit_rows(doc: dict) -> list[list[str]]:
    rows = []
    for row in doc.get("storage_fit") or []:
        for check in row["checks"]:
            if check["fits"] is None:
                verdict = "no limit known"
            elif check["fits"]:
                verdict = "fits"
            else:
                over = check["peak"] - check["limit"]
                verdict = f"over by {_storage_value(check['metric'], over)}"
            headroom = "-" if check["headroom_pct"] is None else f"{check['headroom_pct']:.1f} %"
            rows.append([row["instance_type"], row["target_type"], str(row["hosts"]),
                         _CHECK_LABELS[(check["scope"], check["metric"])],
                         _storage_value(check["metric"], check["peak"]),
                         _storage_value(check["metric"], check["limit"]), headroom, verdict])
    return rows


def effort_rows(doc: dict) -> list[list[str]]:
    return [[e["effort"], e["reason"], f"{e['lines']:,}", _hours(e["hours"]), money(e["cost"]),
             money(e["graviton_cost"]), money(e["total_savings"]),
             "yes" if e["in_headline"] else "no"] for e in doc["by_effort"]]


def latest_month_line(doc: dict) -> str | None:
    latest = doc.get("latest_month")
    if not latest:
        return None
    return (f"latest month {latest['month']}: total savings {money(latest['total_savings'])} "
            f"({_pct(latest['savings_pct'])}) of {money(latest['cost'])}")


def summary_rows(doc: dict) -> list[list[str]]:
    """The headline's figures, and the cost of usage left without prices (with the fix)."""
    t = doc["totals"]
    rows = [
        ["lines in the headline", f"{t['eligible_lines']:,} of {t['all_lines']:,}"],
        ["current cost (headline)", money(t["cost"])],
        ["Graviton cost", money(t["graviton_cost"])],
        ["base savings", money(t["base_savings"])],
        [f"additional savings at {doc['nih_reduction_pct']:g} %",
         money(t["additional_savings"])],
        ["total savings", f"{money(t['total_savings'])} ({_pct(t['savings_pct'])})"],
        ["normalized hours now -> projected",
         f"{_hours(t['nih'])} -> {_hours(t['projected_nih'])}"],
    ]
    if t.get("no_price_cost"):
        rows.append(["cost of usage without prices", money(t["no_price_cost"])])
    return rows


def unpriced_line(doc: dict) -> str | None:
    """What the usage without prices costs, and the command that fetches its prices."""
    t = doc["totals"]
    if not t.get("no_price_cost"):
        return None
    regions = t.get("no_price_regions") or []
    fix = (f"run {UPDATE_COMMAND.format(region=' '.join(regions))}" if regions
           else "give the region (--region or a region column)")
    return (f"usage without prices costs {money(t['no_price_cost'])} and is not in the "
            f"headline: {fix}")


def headline_line(doc: dict) -> str:
    return f"headline counts: {', '.join(doc['headline_efforts'])} (priced usage)"


def provenance_lines(doc: dict) -> list[str]:
    sources = doc["sources"]
    prices = sources["prices"]
    lines = []
    for region, source in prices.get("by_region", {}).items():
        if source["source"]:
            when = f", as of {source['as_of']}" if source["as_of"] else ""
            lines.append(f"prices for {region}: {source['source']}{when}")
        else:
            lines.append(f"prices for {region}: none (run {source['fix']})")
    lines += [f"packaged prices: {prices['source']}, as of {prices['as_of']} "
              f"(regions: {', '.join(prices['regions'])})",
             f"normalization factors: {sources['normalization_factors']['source']}",
             f"x86 -> Graviton mapping: {sources['mapping']['source']}, "
             f"as of {sources['mapping']['as_of']}; target generation: {doc['generation']}"]
    if prices.get("user_price_file"):
        lines.append(f"user prices from {prices['user_price_file']} override the packaged ones")
    return lines


def figure(fig: dict | None, confidence: float | None = None) -> str:
    """A measured reduction with its interval: "33.2 % (90 % interval 30.1 to 36.0 %)"."""
    if not fig or fig.get("nih_reduction_pct") is None:
        return "-"
    low, high = fig["interval_pct"]
    level = f"{confidence:g} % interval " if confidence else ""
    return f"{fig['nih_reduction_pct']:.1f} % ({level}{low:.1f} to {high:.1f} %)"


def nih_line(doc: dict) -> str:
    measured = doc["measured"]
    if not measured:
        return f"NIH reduction: {doc['nih_reduction_pct']:g} % (assumed)"
    g, x = measured["graviton"], measured["x86"]
    used = measured["basis"]
    basis = ("at equal load (work per busy normalized hour)" if used == "equal_load"
             else "raw (work per normalized hour, not load-corrected)")
    other = "raw" if used == "equal_load" else "equal_load"
    other_name = "raw" if other == "raw" else "at equal load"
    return (f"NIH reduction: {figure(measured, measured['confidence_pct'])} measured {basis} "
            f"from {', '.join(measured['work_metrics'])}, {measured['start']} to "
            f"{measured['end']}, {measured[used]['groups']} groups by "
            f"{', '.join(measured['group_by'])}: Graviton {g['hosts']} hosts / "
            f"{g['instance_hours']:,.1f} h, x86 {x['hosts']} hosts / "
            f"{x['instance_hours']:,.1f} h; {other_name}: {figure(measured[other])}")


MEASURED_GROUP_HEADERS = ["group", "Graviton hosts / h", "x86 hosts / h", "Graviton busy",
                          "x86 busy", "at equal load", "raw", "compared"]


def measured_group_rows(measured: dict) -> list[list[str]]:
    """One row per comparison group: its hosts and hours, load, reductions, or why not."""
    rows = []
    for group in measured["groups"]:
        sides = [group["graviton"], group["x86"]]
        busy = [_pct(None if s["cpu_busy_share"] is None else 100 * s["cpu_busy_share"])
                for s in sides]
        rows.append([", ".join(f"{k}={v}" for k, v in group["labels"].items()),
                     *(f"{s['hosts']} / {s['instance_hours']:,.1f}" for s in sides), *busy,
                     figure(group["equal_load"]), figure(group["raw"]),
                     "yes" if group["comparable"] else f"no: {group['reason']}"])
    return rows


def render_table(doc: dict) -> str:
    t = doc["totals"]
    out = ["Graviton savings (normalized instance hours)", ""]
    out += [f"  {line}" for line in provenance_lines(doc)]
    out += ["", nih_line(doc), ""]
    if doc["measured"]:
        out += [f"Measured by comparison group ({doc['measured']['confidence_pct']:g} % "
                "intervals, normal approximation over hosts)",
                tabulate(measured_group_rows(doc["measured"]), headers=MEASURED_GROUP_HEADERS,
                         disable_numparse=True),
                *(f"  note: {note}" for note in doc["measured"]["notes"]), ""]
    out += [tabulate(summary_rows(doc), tablefmt="plain"), headline_line(doc)]
    if unpriced_line(doc):
        out.append(unpriced_line(doc))
    if latest_month_line(doc):
        out.append(latest_month_line(doc))
    out += ["", "Savings implementation effort"]
    out.append(tabulate(effort_rows(doc), headers=EFFORT_HEADERS, disable_numparse=True,
                        colalign=("left", "left", *("right",) * 6)))
    out += ["", "Eligibility"]
    out.append(tabulate([[e["reason"], f"{e['lines']:,}", _hours(e["hours"]), money(e["cost"]),
                          money(e["unused_fees"])] for e in doc["exclusions"]],
                        headers=EXCLUSION_HEADERS, disable_numparse=True,
                        colalign=("left", "right", "right", "right", "right")))
    out.append(f"  cost of every line: {money(t['all_cost'])}, of which unused RI fees and "
               f"Savings Plan commitment {money(t['all_unused_fees'])}")
    out += ["", "By family"]
    out.append(_group_table(doc["by_family"], ["family", "target_family"]))
    out += ["", "By instance type"]
    out.append(_group_table(doc["by_instance_type"], ["instance_type", "target_type"],
                            storage=True))
    if doc.get("storage_fit") is not None:
        out += ["", "Storage fit: measured peaks against the Graviton type's limits"]
        rows = storage_fit_rows(doc)
        out.append(tabulate(rows, headers=STORAGE_FIT_HEADERS, disable_numparse=True)
                   if rows else "  (no peak gauges from x86 hosts with a target)")
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


def storage_cells(row: dict) -> list[str]:
    return [_gb(row.get("local_storage_gb")), _gb(row.get("target_local_storage_gb"))]


def _group_table(rows: list[dict], keys: list[str], storage: bool = False) -> str:
    if not rows:
        return "  (nothing eligible)"
    body = [[*(r[k] for k in keys), *(storage_cells(r) if storage else []), _hours(r["hours"]),
             _hours(r["nih"]), money(r["cost"]), money(r["graviton_cost"]),
             money(r["base_savings"]), money(r["additional_savings"]),
             money(r["total_savings"]), _pct(r["savings_pct"])]
            for r in rows]
    extra = ["local disk", "target disk"] if storage else []
    headers = [*keys, *extra, "hours", "norm. hours", "cost", "Graviton cost", "base",
               "additional", "total", "%"]
    return tabulate(body, headers=headers, disable_numparse=True,
                    colalign=("left",) * len(keys) + ("right",) * (8 + len(extra)))
