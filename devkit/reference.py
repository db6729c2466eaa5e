"""Pure-Python decode, delta, totals and quantiles: the oracle the C core is compared against.

Written straight from docs/logpage.md, independently of the C code; used only by tests.
"""

from __future__ import annotations

import math
import struct

EBS, INSTANCE_STORE = 0x3C23B510, 0xEC2C0D7E
COUNTER_NAMES = (
    "total_read_ops", "total_write_ops", "total_read_bytes", "total_write_bytes",
    "total_read_time", "total_write_time", "ebs_volume_performance_exceeded_iops",
    "ebs_volume_performance_exceeded_tp", "ec2_instance_performance_exceeded_iops",
    "ec2_instance_performance_exceeded_tp", "volume_queue_length",
)
READ_OPS, WRITE_OPS, QUEUE = 0, 1, 10
TRAFFIC = 6  # ops, bytes and time, read and write: the counters a restart sets back
U32 = 2**32
MAX64 = 2**64 - 1


class Invalid(Exception):
    """The page is malformed; .reason names the C error it should match."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _hist(buf: bytes, off: int) -> dict:
    (n,) = struct.unpack_from("<Q", buf, off)
    if n > 64:
        raise Invalid("bins")
    lower, upper, count = [], [], []
    for b in range(n):
        lo, up, c, _ = struct.unpack_from("<QQII", buf, off + 8 + 24 * b)
        if lo >= up or (b and lo < upper[-1]):
            raise Invalid("bounds")
        # The exporter labels a bin with le = upper * 1e-6 seconds: each must be its own.
        if b and float(up) * 1e-6 == float(upper[-1]) * 1e-6:
            raise Invalid("seconds")
        lower.append(lo)
        upper.append(up)
        count.append(c)
    return {"lower": lower, "upper": upper, "count": count}


def _bands(buf: bytes, nbins: int) -> list:
    (num_hists,) = struct.unpack_from("<I", buf, 3600)
    if num_hists > 8:
        raise Invalid("hists")
    if nbins > 32:
        raise Invalid("detail_bins")
    bands, low = [], 0
    for i in range(num_hists):
        (size,) = struct.unpack_from("<I", buf, 3604 + 4 * i)
        high = math.inf if size == 0xFFFFFFFF else size
        if high <= low:
            raise Invalid("bands")
        block = 4096 + 512 * i
        if len(buf) >= 8192:
            reads = list(struct.unpack_from(f"<{nbins}Q", buf, block))
            writes = list(struct.unpack_from(f"<{nbins}Q", buf, block + 256))
        else:  # an EBS page is 4096 bytes: band bounds but no counts
            reads, writes = [0] * nbins, [0] * nbins
        bands.append({"low": low, "high": high, "read": reads, "write": writes})
        low = high
    return bands


def decode(buf: bytes) -> dict:
    if len(buf) < 8:
        raise Invalid("short")
    magic, version = struct.unpack_from("<II", buf, 0)
    if magic not in (EBS, INSTANCE_STORE):
        raise Invalid("magic")
    if len(buf) < 4096 or (magic == INSTANCE_STORE and version == 1 and len(buf) < 8192):
        raise Invalid("short")
    page = {
        "kind": "ebs" if magic == EBS else "instance_store",
        "version": version,
        "counters": list(struct.unpack_from("<11Q", buf, 8)),
        "read": _hist(buf, 512),
        "write": _hist(buf, 2056),
        "bands": [],
    }
    nbins = len(page["write"]["count"])
    if version == 1:
        page["bands"] = _bands(buf, nbins)
    elif version > 1 and len(buf) >= 8192:
        # Newer versions share version 1's layout; bands only where its header holds.
        try:
            page["bands"] = _bands(buf, nbins)
        except Invalid:
            pass
    return page


def layout(page: dict) -> tuple:
    return (page["kind"], page["read"]["lower"], page["read"]["upper"],
            page["write"]["lower"], page["write"]["upper"],
            [(b["low"], b["high"]) for b in page["bands"]])


def restarted(prev: dict, cur: dict) -> bool:
    """Every traffic counter (ops, bytes, time) that had counted went down, and one did."""
    pairs = list(zip(prev["counters"][:TRAFFIC], cur["counters"][:TRAFFIC]))
    return any(c < p for p, c in pairs) and all(c < p for p, c in pairs if p)


def delta(prev: dict, cur: dict) -> tuple[dict, dict]:
    """(delta page, {"reset", "glitches", "glitch_count"}) by the rules in docs/logpage.md."""
    if layout(prev) != layout(cur):
        raise Invalid("layout")
    if restarted(prev, cur):
        return cur, {"reset": True, "glitches": (), "glitch_count": 0}
    glitches, counters = [], []
    for i, (p, c) in enumerate(zip(prev["counters"], cur["counters"])):
        if i == QUEUE:
            counters.append(c)
        elif c < p:
            counters.append(0)
            glitches.append(COUNTER_NAMES[i])
        else:
            counters.append(c - p)

    def base_bins(op: str, ops_growth: int) -> tuple[list[int], int]:
        out, bad = [], 0
        for p, c in zip(prev[op]["count"], cur[op]["count"]):
            grew = (c - p) % U32  # wrapped at most once: it fits in the ops growth
            if c < p and grew > ops_growth:
                grew, bad = 0, bad + 1
            out.append(grew)
        return out, bad

    read, bad_read = base_bins("read", counters[READ_OPS])
    write, bad_write = base_bins("write", counters[WRITE_OPS])
    bands, bad_bands = [], 0
    for pb, cb in zip(prev["bands"], cur["bands"]):
        band = dict(cb)
        for op in ("read", "write"):
            band[op] = [c - p if c >= p else 0 for p, c in zip(pb[op], cb[op])]
            bad_bands += sum(c < p for p, c in zip(pb[op], cb[op]))
        bands.append(band)
    count = len(glitches) + bad_read + bad_write + bad_bands
    for name, bad in (("read_bins", bad_read), ("write_bins", bad_write),
                      ("band_bins", bad_bands)):
        if bad:
            glitches.append(name)
    out = {"kind": cur["kind"], "version": cur["version"], "counters": counters,
           "read": dict(cur["read"], count=read), "write": dict(cur["write"], count=write),
           "bands": bands}
    return out, {"reset": False, "glitches": tuple(glitches), "glitch_count": count}


def _fold(upper: list[int], counts: list[int], edges: list[int]) -> list[int]:
    """Counts binned by upper, moved to the first edge >= their upper; the last takes the rest."""
    out = [0] * len(edges)
    for up, c in zip(upper, counts):
        target = next((e for e, edge in enumerate(edges) if edge >= up), len(edges) - 1)
        if edges:
            out[target] += c
    return out


def _midpoints(hist: dict, n: int) -> list[float]:
    """Where an IO of each bin counts for time: its middle; the open last bin its lower bound."""
    lower, upper = hist["lower"][:n], hist["upper"][:n]
    return [float(lo) if b == n - 1 else (lo + up) / 2
            for b, (lo, up) in enumerate(zip(lower, upper))]


def accumulate(totals: dict | None, d: dict) -> dict:
    """Running totals: the first delta's layout, later deltas folded onto it; a total stops
    at 2^64 - 1 rather than wrap. "band_sums": each band's estimated read and write time."""
    if totals is None:
        totals = {"kind": d["kind"], "version": d["version"], "counters": [0] * 11,
                  "read": dict(d["read"], count=[0] * len(d["read"]["count"])),
                  "write": dict(d["write"], count=[0] * len(d["write"]["count"])),
                  "bands": [dict(b, read=[0] * len(b["read"]), write=[0] * len(b["write"]))
                            for b in d["bands"]],
                  "band_sums": [[0.0, 0.0] for _ in d["bands"]]}
    elif totals["kind"] != d["kind"]:
        raise Invalid("layout")
    out = {**totals, "counters": [c if i == QUEUE else min(t + c, MAX64) for i, (t, c)
                                  in enumerate(zip(totals["counters"], d["counters"]))]}
    for op in ("read", "write"):
        add = _fold(d[op]["upper"], d[op]["count"], totals[op]["upper"])
        out[op] = dict(totals[op], count=[min(t + a, MAX64)
                                          for t, a in zip(totals[op]["count"], add)])
    bands = [dict(b) for b in totals["bands"]]
    sums = [list(s) for s in totals["band_sums"]]
    edges = totals["write"]["upper"]
    for band in d["bands"] if bands else ():
        j = next((j for j, b in enumerate(bands) if b["high"] >= band["high"]), len(bands) - 1)
        mids = _midpoints(d["write"], len(band["read"]))
        for k, op in enumerate(("read", "write")):
            add = _fold(d["write"]["upper"], band[op], edges[:len(bands[j][op])])
            bands[j][op] = [min(t + a, MAX64) for t, a in zip(bands[j][op], add)]
            sums[j][k] += sum(c * m for c, m in zip(band[op], mids))
    out["bands"], out["band_sums"] = bands, sums
    return out


def quantile(lower: list[int], upper: list[int], count: list[int], q: float) -> float:
    """Rank q * total, linear inside the bin; the last bin (open ended) gives its lower bound.
    Counts add up as doubles, as they do in the exporter and in PromQL."""
    total = 0.0
    for c in count:
        total += float(c)
    if total == 0:
        return math.nan
    rank, seen = q * total, 0.0
    for b, c in enumerate(map(float, count)):
        if c == 0:
            continue
        if seen + c >= rank or b == len(count) - 1:
            if b == len(count) - 1:
                return float(lower[b])
            return lower[b] + (upper[b] - lower[b]) * max(rank - seen, 0) / c
        seen += c
    raise AssertionError("unreachable")
