"""Page builders and hypothesis strategies shared by the native tests."""

from __future__ import annotations

import random

from hypothesis import strategies as st

from nitrometer import logpage

WRAP = 2**32
MAX64 = 2**64 - 1
OPS = {"read": "total_read_ops", "write": "total_write_ops"}


def bins_from(bounds, counts):
    return [(lo, up, c) for (lo, up), c in zip(bounds, counts)]


def realistic_page(kind: str = "instance_store", seed: int = 1, scale: int = 1) -> bytes:
    """A page with plausible numbers: most IO in the 32-256 us bins."""
    rng = random.Random(seed)
    n = 28 if kind == "ebs" else 24
    bounds = logpage.power_of_two_bounds(n)
    shape = [0] * 5 + [rng.randint(1, 50), 400, 3000, 9000, 4000, 800, 90, 10, 2] + [0] * (n - 14)
    read = [c * scale for c in shape]
    write = [c * scale // 2 for c in shape]
    ops_r, ops_w = sum(read), sum(write)
    counters = {
        "total_read_ops": ops_r, "total_write_ops": ops_w,
        "total_read_bytes": ops_r * 4096, "total_write_bytes": ops_w * 16384,
        "total_read_time": ops_r * 90, "total_write_time": ops_w * 120,
        "ec2_instance_performance_exceeded_iops": 1500 * scale,
        "volume_queue_length": 3,
    }
    if kind == "ebs":
        counters["ebs_volume_performance_exceeded_tp"] = 250 * scale
        return logpage.encode_page(kind, counters, bins_from(bounds, read),
                                   bins_from(bounds, write))
    band_read = [[c // 5 for c in read] for _ in range(5)]
    band_write = [[c // 5 for c in write] for _ in range(5)]
    return logpage.encode_page(kind, counters, bins_from(bounds, read), bins_from(bounds, write),
                               band_sizes=logpage.DEFAULT_BAND_SIZES,
                               band_read=band_read, band_write=band_write)


@st.composite
def layouts(draw, kind: str | None = None, collapsing: bool = False):
    """(kind, bin bounds, band sizes, version) of a page. Bounds stay apart in seconds unless
    collapsing, which packs them near 2^60 us where neighbours can share one double."""
    kind = kind or draw(st.sampled_from(["ebs", "instance_store"]))
    detail = kind == "instance_store" and draw(st.booleans())
    nbins = draw(st.integers(0, 32 if detail else 64))
    base, span = (2**60, 2**12) if collapsing else (0, 2**40)
    edges = sorted(draw(st.sets(st.integers(base, base + span),
                                min_size=nbins + 1, max_size=nbins + 1)))
    bounds = list(zip(edges[:-1], edges[1:]))
    sizes = ()
    if detail:
        nbands = draw(st.integers(0, 8))
        sizes = sorted(draw(st.sets(st.integers(1, 2**32 - 2), min_size=nbands, max_size=nbands)))
        if sizes and draw(st.booleans()):
            sizes[-1] = logpage.NO_SIZE_BOUND
        version = draw(st.sampled_from([1, 1, 2, 7]))  # newer versions share version 1's layout
    else:
        version = draw(st.sampled_from([0, 0, 2]))
    return kind, bounds, tuple(sizes), version


def counts(n, hi):
    return st.lists(st.integers(0, hi), min_size=n, max_size=n)


@st.composite
def page_values(draw, layout):
    kind, bounds, sizes, _ = layout
    n = len(bounds)
    counters = dict(zip(logpage.COUNTERS, draw(counts(len(logpage.COUNTERS), 2**64 - 1))))
    for name in OPS.values():  # a device that never read or never wrote keeps that at 0
        if draw(st.integers(0, 3)) == 0:
            counters[name] = 0
    return {
        "counters": counters,
        "read": draw(counts(n, WRAP - 1)),
        "write": draw(counts(n, WRAP - 1)),
        "band_read": [draw(counts(n, 2**63)) for _ in sizes],
        "band_write": [draw(counts(n, 2**63)) for _ in sizes],
    }


def encode(layout, values) -> bytes:
    kind, bounds, sizes, version = layout
    return logpage.encode_page(
        kind, values["counters"], bins_from(bounds, values["read"]),
        bins_from(bounds, values["write"]), version=version, band_sizes=sizes,
        band_read=values["band_read"], band_write=values["band_write"])


@st.composite
def successor(draw, layout, prev):
    """The next poll's values: growth (bins wrapping, the op counters covering it or not),
    a few fields stepping back alone, a device restart, or anything at all."""
    mode = draw(st.sampled_from(["grow", "grow", "glitch", "glitch", "restart", "anything"]))
    if mode == "anything":
        return draw(page_values(layout))
    small = st.integers(0, 2**20)
    cur = {
        "counters": {k: min(v + draw(small), MAX64) for k, v in prev["counters"].items()},
        "band_read": [[min(c + draw(small), MAX64) for c in b] for b in prev["band_read"]],
        "band_write": [[min(c + draw(small), MAX64) for c in b] for b in prev["band_write"]],
    }
    cur["counters"]["volume_queue_length"] = draw(st.integers(0, MAX64))
    for op, counter in OPS.items():
        grew = [draw(st.integers(0, 2**33)) for _ in prev[op]]
        cur[op] = [(c + g) % WRAP for c, g in zip(prev[op], grew)]
        if draw(st.booleans()):  # the op counter accounts for every IO the bins gained
            cur["counters"][counter] = min(prev["counters"][counter] + sum(grew), MAX64)
    if mode == "glitch":
        for _ in range(draw(st.integers(1, 3))):
            step_back(draw, prev, cur)
    elif mode == "restart":
        for counter in OPS.values():
            before = prev["counters"][counter]
            cur["counters"][counter] = draw(st.integers(0, before - 1)) if before else 0
    return cur


def step_back(draw, prev, values) -> None:
    """One counter or bin ends a little below its previous value."""
    kinds = [[("counters", name) for name in logpage.COUNTERS[:-1]],
             [(op, b) for op in ("read", "write") for b in range(len(values[op]))],
             [(op, i) for op in ("band_read", "band_write") for i in range(len(values[op]))]]
    field, key = draw(st.sampled_from(draw(st.sampled_from([k for k in kinds if k]))))
    if field in ("read", "write"):  # u32 on the device: 0 steps back to 2^32 - 1
        values[field][key] = (prev[field][key] - draw(st.integers(1, 16))) % WRAP
    elif field == "counters":
        values[field][key] = max(prev[field][key] - draw(st.integers(1, 2**24)), 0)
    elif values[field][key]:
        b = draw(st.integers(0, len(values[field][key]) - 1))
        values[field][key][b] = max(prev[field][key][b] - draw(st.integers(1, 16)), 0)
