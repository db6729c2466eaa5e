"""Page builders and hypothesis strategies shared by the native tests."""

from __future__ import annotations

import random

from hypothesis import strategies as st

from nitrometer import logpage

WRAP = 2**32


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
def layouts(draw):
    """Bin bounds, band sizes and kind for a valid page."""
    kind = draw(st.sampled_from(["ebs", "instance_store"]))
    detail = kind == "instance_store" and draw(st.booleans())
    nbins = draw(st.integers(0, 32 if detail else 64))
    edges = sorted(draw(st.sets(st.integers(0, 2**40), min_size=nbins + 1, max_size=nbins + 1)))
    bounds = list(zip(edges[:-1], edges[1:]))
    sizes = ()
    if detail:
        nbands = draw(st.integers(0, 8))
        sizes = sorted(draw(st.sets(st.integers(1, 2**32 - 2), min_size=nbands, max_size=nbands)))
        if sizes and draw(st.booleans()):
            sizes[-1] = logpage.NO_SIZE_BOUND
    return kind, bounds, tuple(sizes), detail


def counts(n, hi):
    return st.lists(st.integers(0, hi), min_size=n, max_size=n)


@st.composite
def page_values(draw, layout):
    kind, bounds, sizes, _ = layout
    n = len(bounds)
    counters = dict(zip(logpage.COUNTERS, draw(counts(len(logpage.COUNTERS), 2**64 - 1))))
    return {
        "counters": counters,
        "read": draw(counts(n, WRAP - 1)),
        "write": draw(counts(n, WRAP - 1)),
        "band_read": [draw(counts(n, 2**63)) for _ in sizes],
        "band_write": [draw(counts(n, 2**63)) for _ in sizes],
    }


def encode(layout, values) -> bytes:
    kind, bounds, sizes, detail = layout
    return logpage.encode_page(
        kind, values["counters"], bins_from(bounds, values["read"]),
        bins_from(bounds, values["write"]), version=1 if detail else 0, band_sizes=sizes,
        band_read=values["band_read"], band_write=values["band_write"])


@st.composite
def successor(draw, layout, prev):
    """The next poll's values: growth with u32 bin wraps, or occasionally a device reset."""
    if draw(st.integers(0, 9)) == 0:
        return draw(page_values(layout))
    n = len(layout[1])
    grow = lambda v, hi: min(v + draw(st.integers(0, 2**20)), hi)  # noqa: E731
    counters = {k: grow(v, 2**64 - 1) for k, v in prev["counters"].items()}
    counters["volume_queue_length"] = draw(st.integers(0, 2**64 - 1))
    return {
        "counters": counters,
        "read": [(c + draw(st.integers(0, 2**33))) % WRAP for c in prev["read"]],
        "write": [(c + draw(st.integers(0, 2**33))) % WRAP for c in prev["write"]],
        "band_read": [[grow(c, 2**64 - 1) for c in band] for band in prev["band_read"]],
        "band_write": [[grow(c, 2**64 - 1) for c in band] for band in prev["band_write"]],
    } if n >= 0 else prev
