"""Pure-Python decode, delta and quantiles: the oracle the C core is compared against.

Written straight from LOGPAGE.md, independently of the C code; used only by tests.
"""

from __future__ import annotations

import math
import struct

EBS, INSTANCE_STORE = 0x3C23B510, 0xEC2C0D7E
COUNTERS = 11
QUEUE = 10


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
        lower.append(lo)
        upper.append(up)
        count.append(c)
    return {"lower": lower, "upper": upper, "count": count}


def decode(buf: bytes) -> dict:
    if len(buf) < 8:
        raise Invalid("short")
    magic, version = struct.unpack_from("<II", buf, 0)
    if magic not in (EBS, INSTANCE_STORE):
        raise Invalid("magic")
    if version > 1:
        raise Invalid("version")
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
    if version == 1:
        (num_hists,) = struct.unpack_from("<I", buf, 3600)
        if num_hists > 8:
            raise Invalid("hists")
        nbins = len(page["write"]["count"])
        if nbins > 32:
            raise Invalid("detail_bins")
        low = 0
        for i in range(num_hists):
            (size,) = struct.unpack_from("<I", buf, 3604 + 4 * i)
            high = math.inf if size == 0xFFFFFFFF else size
            if high <= low:
                raise Invalid("bands")
            block = 4096 + 512 * i
            if len(buf) >= 8192:
                reads = list(struct.unpack_from(f"<{nbins}Q", buf, block))
                writes = list(struct.unpack_from(f"<{nbins}Q", buf, block + 256))
            else:
                reads, writes = [0] * nbins, [0] * nbins
            page["bands"].append({"low": low, "high": high, "read": reads, "write": writes})
            low = high
    return page


def delta(prev: dict, cur: dict) -> tuple[dict, bool]:
    layout = lambda p: (p["kind"], p["version"], p["read"]["lower"], p["read"]["upper"],  # noqa: E731
                        p["write"]["lower"], p["write"]["upper"],
                        [(b["low"], b["high"]) for b in p["bands"]])
    if layout(prev) != layout(cur):
        raise Invalid("layout")
    went_down = any(c < p for i, (p, c) in enumerate(zip(prev["counters"], cur["counters"]))
                    if i != QUEUE)
    for pb, cb in zip(prev["bands"], cur["bands"]):
        went_down |= any(c < p for p, c in zip(pb["read"] + pb["write"], cb["read"] + cb["write"]))
    if went_down:
        return cur, True
    out = {
        "kind": cur["kind"], "version": cur["version"],
        "counters": [c if i == QUEUE else c - p
                     for i, (p, c) in enumerate(zip(prev["counters"], cur["counters"]))],
        "read": dict(cur["read"], count=[(c - p) % 2**32 for p, c in
                                         zip(prev["read"]["count"], cur["read"]["count"])]),
        "write": dict(cur["write"], count=[(c - p) % 2**32 for p, c in
                                           zip(prev["write"]["count"], cur["write"]["count"])]),
        "bands": [dict(cb, read=[c - p for p, c in zip(pb["read"], cb["read"])],
                       write=[c - p for p, c in zip(pb["write"], cb["write"])])
                  for pb, cb in zip(prev["bands"], cur["bands"])],
    }
    return out, False


def quantile(lower: list[int], upper: list[int], count: list[int], q: float) -> float:
    """Rank q * total, linear inside the bin; the last bin (open ended) gives its lower bound."""
    total = sum(count)
    if total == 0:
        return math.nan
    rank, seen = q * total, 0
    for b, c in enumerate(count):
        if c == 0:
            continue
        if seen + c >= rank or b == len(count) - 1:
            if b == len(count) - 1:
                return float(lower[b])
            return lower[b] + (upper[b] - lower[b]) * max(rank - seen, 0) / c
        seen += c
    raise AssertionError("unreachable")
