"""JSON Schema of `nitrometer savings -o json` (documented in docs/savings.md)."""

_NUMBER = {"type": "number"}
_GROUP = {
    "hours": _NUMBER, "nih": _NUMBER, "projected_nih": _NUMBER, "cost": _NUMBER,
    "graviton_cost": _NUMBER, "base_savings": _NUMBER, "additional_savings": _NUMBER,
    "total_savings": _NUMBER, "savings_pct": _NUMBER,
}
_SIDE = {
    "type": "object",
    "required": ["hosts", "instance_hours", "normalized_hours", "work",
                 "work_per_normalized_hour"],
    "properties": {"hosts": {"type": "integer"}, "instance_hours": _NUMBER,
                   "normalized_hours": _NUMBER, "work": _NUMBER,
                   "work_per_normalized_hour": _NUMBER,
                   "hosts_with_cpu": {"type": "integer"},
                   "cpu_busy_share": {"type": ["number", "null"]},
                   "work_per_busy_normalized_hour": {"type": ["number", "null"]}},
}
# The measured reduction on one basis (equal load or raw): null when nothing compares.
_INTERVAL = {"oneOf": [{"type": "null"},
                       {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2}]}
_FIGURE = {"type": "object", "required": ["nih_reduction_pct", "interval_pct"],
           "properties": {"nih_reduction_pct": {"type": ["number", "null"]},
                          "interval_pct": _INTERVAL, "groups": {"type": "integer"}}}
_MEASURED_GROUP = {
    "type": "object",
    "required": ["labels", "comparable", "reason", "weight_normalized_hours", "equal_load",
                 "raw", "graviton", "x86"],
    "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}},
                   "comparable": {"type": "boolean"},
                   "reason": {"type": ["string", "null"]},
                   "weight_normalized_hours": _NUMBER, "equal_load": _FIGURE, "raw": _FIGURE,
                   "graviton": _SIDE, "x86": _SIDE},
}


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_CHECK = {
    "type": "object",
    "required": ["scope", "metric", "peak", "limit", "headroom_pct", "fits"],
    "properties": {"scope": {"enum": ["instance_store", "ebs"]},
                   "metric": {"enum": ["read_iops", "write_iops", "iops",
                                       "throughput_bytes_per_second"]},
                   "peak": _NUMBER, "limit": _NUMBER_OR_NULL,
                   "headroom_pct": _NUMBER_OR_NULL,
                   "fits": {"type": ["boolean", "null"]}},
}
_EFFORTS = ["Typically Easy", "Requires Additional Planning", "Excluded", "Already Graviton"]


def _rows(keys: dict) -> dict:
    return {"type": "array", "items": {"type": "object", "required": [*keys, *_GROUP],
                                       "properties": {**keys, **_GROUP}}}


JSON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "nitrometer savings report",
    "type": "object",
    "required": ["schema_version", "generated_at", "inputs", "sources", "generation",
                 "nih_reduction_pct", "nih_reduction_source", "measured", "totals",
                 "exclusions", "by_family", "by_instance_type", "by_month", "sweep",
                 "headline_efforts", "latest_month", "by_effort", "keep_local_storage",
                 "storage_fit", "warnings"],
    "properties": {
        "schema_version": {"const": 1},
        "generated_at": {"type": "string"},
        "inputs": {"type": "object", "required": ["kind", "paths"], "properties": {
            "kind": {"enum": ["cur", "usage-csv", "athena", "prometheus"]},
            "paths": {"type": "array", "items": {"type": "string"}},
            "start": {"type": "string"}, "end": {"type": "string"}}},
        "sources": {"type": "object", "required": ["prices", "normalization_factors",
                                                   "mapping"],
                    "properties": {"prices": {"type": "object", "required": ["by_region"],
                                              "properties": {"by_region": {
                                                  "type": "object",
                                                  "additionalProperties": {
                                                      "type": "object",
                                                      "required": ["source", "as_of"]}}}}}},
        "generation": {"enum": ["latest", "graviton2", "graviton3", "graviton4"]},
        "nih_reduction_pct": _NUMBER,
        "nih_reduction_source": {"enum": ["assumed", "measured"]},
        "measured": {"oneOf": [{"type": "null"}, {
            "type": "object",
            "required": ["nih_reduction_pct", "interval_pct", "basis", "confidence_pct",
                         "group_by", "equal_load", "raw", "groups", "notes", "work_metrics",
                         "label_filter", "start", "end", "prometheus", "graviton", "x86"],
            "properties": {"nih_reduction_pct": _NUMBER, "interval_pct": _INTERVAL,
                           "basis": {"enum": ["equal_load", "raw"]},
                           "confidence_pct": _NUMBER, "interval_method": {"enum": ["normal"]},
                           "min_hosts": {"type": "integer"}, "min_hours": _NUMBER,
                           "warnings": {"type": "array", "items": {"type": "string"}},
                           "group_by": {"type": "array", "items": {"type": "string"}},
                           "equal_load": _FIGURE, "raw": _FIGURE,
                           "groups": {"type": "array", "items": _MEASURED_GROUP},
                           "notes": {"type": "array", "items": {"type": "string"}},
                           "work_metrics": {"type": "array", "items": {"type": "string"}},
                           "label_filter": {"type": ["string", "null"]},
                           "start": {"type": "string"}, "end": {"type": "string"},
                           "prometheus": {"type": "string"},
                           "graviton": _SIDE, "x86": _SIDE}}]},
        "totals": {"type": "object",
                   "required": [*_GROUP, "all_lines", "all_cost", "all_unused_fees",
                                "eligible_lines"],
                   "properties": {**_GROUP, "all_lines": {"type": "integer"},
                                  "all_cost": _NUMBER, "all_unused_fees": _NUMBER,
                                  "eligible_lines": {"type": "integer"},
                                  "no_price_cost": _NUMBER,
                                  "no_price_regions": {"type": "array",
                                                       "items": {"type": "string"}}}},
        "exclusions": {"type": "array", "items": {
            "type": "object", "required": ["reason", "lines", "hours", "cost", "unused_fees"],
            "properties": {"reason": {"type": "string"}, "lines": {"type": "integer"},
                           "hours": _NUMBER, "cost": _NUMBER, "unused_fees": _NUMBER}}},
        "by_family": _rows({"family": {"type": "string"},
                            "target_family": {"type": "string"}}),
        "by_instance_type": _rows({"instance_type": {"type": "string"},
                                   "family": {"type": "string"},
                                   "target_type": {"type": "string"},
                                   "local_storage_gb": _NUMBER_OR_NULL,
                                   "target_local_storage_gb": _NUMBER_OR_NULL}),
        "by_month": _rows({"month": {"type": "string"}}),
        "sweep": {"type": "array", "items": {
            "type": "object",
            "required": ["nih_reduction_pct", "base_savings", "additional_savings",
                         "total_savings", "savings_pct"],
            "properties": {"nih_reduction_pct": _NUMBER, "base_savings": _NUMBER,
                           "additional_savings": _NUMBER, "total_savings": _NUMBER,
                           "savings_pct": _NUMBER}}},
        "headline_efforts": {"type": "array", "items": {"enum": _EFFORTS}},
        "latest_month": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["month", *_GROUP],
            "properties": {"month": {"type": "string"}, **_GROUP}}]},
        "by_effort": {"type": "array", "items": {
            "type": "object",
            "required": ["effort", "reason", "lines", "hours", "cost", "graviton_cost",
                         "total_savings", "in_headline"],
            "properties": {"effort": {"enum": _EFFORTS}, "reason": {"type": "string"},
                           "lines": {"type": "integer"}, "hours": _NUMBER, "cost": _NUMBER,
                           "graviton_cost": _NUMBER, "total_savings": _NUMBER,
                           "in_headline": {"type": "boolean"}}}},
        "keep_local_storage": {"type": "boolean"},
        "storage_fit": {"oneOf": [{"type": "null"}, {"type": "array", "items": {
            "type": "object",
            "required": ["instance_type", "target_type", "hosts", "fits", "checks"],
            "properties": {"instance_type": {"type": "string"},
                           "target_type": {"type": "string"},
                           "hosts": {"type": "integer"},
                           "fits": {"type": ["boolean", "null"]},
                           "checks": {"type": "array", "items": _CHECK}}}}]},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}
