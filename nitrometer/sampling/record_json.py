"""The interval record as JSON: the field names of docs/snapshot.schema.json
(`$defs/snapshot_record`, described in docs/snapshot-json.md). Only renders the record."""

from __future__ import annotations

from nitrometer import native
from nitrometer.logpage import EXCEEDED_COUNTERS
from nitrometer.timefmt import rfc3339

SCHEMA_ID = "nitrometer.snapshot/1"
JSON_QUANTILES = (0.5, 0.99, 0.999)  # p50, p99, p99.9
OPEN_ENDED_FROM_US = 1 << 40  # devices mark the last bin open with a huge upper bound


def hist_json(hist: native.Histogram) -> list[dict]:
    return [{"lower_us": lo, "upper_us": None if up >= OPEN_ENDED_FROM_US else up,
             "count": c} for lo, up, c in hist.bins() if c]


def _quantile_fields(q: dict) -> dict:
    return {"p50_us": q.get(0.5), "p99_us": q.get(0.99), "p999_us": q.get(0.999)}


def _op_json(stats, hist: native.Histogram) -> dict:
    return {"ops": stats.ops, "bytes": stats.bytes, "time_us": stats.time_us,
            "iops": stats.iops, "mb_per_s": stats.mb_per_s, "mean_us": stats.mean_us,
            **_quantile_fields(stats.quantiles_us), "histogram": hist_json(hist)}


def device_json(device) -> dict:
    return {"name": device.name, "path": device.path, "kind": device.kind,
            "serial": device.serial, "model": device.model,
            "bdev": getattr(device, "bdev", "") or None}


def interval_json(iv, view: str, wall: float, elapsed: float) -> dict:
    """One record as a snapshot JSON object; `wall` is the end of the interval in wall time,
    `elapsed` the seconds since sampling began."""
    seconds = iv.seconds
    return {
        "schema": SCHEMA_ID, "view": view, "time": rfc3339(wall),
        "elapsed_s": round(elapsed, 6),
        "interval_s": None if seconds is None else round(seconds, 6),
        "device": device_json(iv.device), "reset": iv.reset,
        "glitches": list(iv.glitches), "confirmed": iv.confirmed, "dropped": list(iv.dropped),
        "read": _op_json(iv.op("read"), iv.delta.read),
        "write": _op_json(iv.op("write"), iv.delta.write),
        "exceeded": {f"{scope}_{limit}": {"us": e.us, "percent": e.percent,
                                          "counted": e.counted}
                     for (scope, limit), e in ((k, iv.exceeded[k]) for k in EXCEEDED_COUNTERS)},
        "headroom": [{"scope": h.scope, "op": h.op, "limit": h.limit, "bound": h.bound,
                      "used": h.used, "percent": h.percent} for h in iv.headroom],
        "queue_length": iv.queue_length,
        "io_size_bands": [{
            "low_bytes": b.low, "high_bytes": b.high, "label": b.label,
            "read": {"ops": b.read_ops, **_quantile_fields(b.read_q)},
            "write": {"ops": b.write_ops, **_quantile_fields(b.write_q)},
        } for b in iv.bands],
    }
