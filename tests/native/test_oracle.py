"""Property tests: the C core agrees with the pure-Python reference on random pages."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devkit import reference
from nitrometer import devicecore, logpage, native
from tests.native.pages import WRAP, encode, layouts, page_values, successor

REASONS = {-1: "short", -2: "magic", -4: "bins", -5: "detail_bins", -6: "hists",
           -7: "bounds", -8: "bands", -9: "layout", -11: "seconds"}


def as_reference(page: native.Page) -> dict:
    """A C-decoded page in the reference's shape, for direct comparison."""
    hist = lambda h: {"lower": h.lower, "upper": h.upper, "count": h.counts}  # noqa: E731
    return {
        "kind": page.kind, "version": page.version,
        "counters": list(page.counters.values()),
        "read": hist(page.read), "write": hist(page.write),
        "bands": [{"low": b.low, "high": math.inf if b.high is None else b.high,
                   "read": b.read.counts, "write": b.write.counts} for b in page.bands],
    }


def same_floats(a, b):
    """Equal up to float rounding (C and Python order the arithmetic differently; denormals
    such as q = 5e-324 lose all relative precision)."""
    close = lambda x, y: math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-300)  # noqa: E731
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or close(x, y)
                                    for x, y in zip(a, b))


def check_decode_agrees(buf: bytes):
    try:
        expected = reference.decode(buf)
    except reference.Invalid as exc:
        try:
            native.decode(buf)
        except native.PageError as err:
            assert REASONS[err.code] == exc.reason
            return None
        raise AssertionError(f"C accepted a page the reference refused ({exc.reason})") from None
    page = native.decode(buf)
    assert as_reference(page) == expected
    return page


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decode_agrees_with_reference(data):
    layout = data.draw(layouts(collapsing=data.draw(st.integers(0, 4)) == 0))
    check_decode_agrees(encode(layout, data.draw(page_values(layout))))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_delta_and_quantiles_agree_with_reference(data):
    layout = data.draw(layouts())
    prev_values = data.draw(page_values(layout))
    cur_values = data.draw(successor(layout, prev_values))
    prev_buf, cur_buf = encode(layout, prev_values), encode(layout, cur_values)
    qs = data.draw(st.lists(st.floats(0, 1), min_size=1, max_size=16))

    prev_page, cur_page = native.decode(prev_buf), native.decode(cur_buf)
    expected, info = reference.delta(reference.decode(prev_buf), reference.decode(cur_buf))
    summary = native.summarize(prev_page, cur_page, qs)
    assert summary.reset == info["reset"]
    assert (summary.glitches, summary.glitch_count) == (info["glitches"], info["glitch_count"])
    assert as_reference(summary.delta) == expected
    for op, got in (("read", summary.read_q), ("write", summary.write_q)):
        h = expected[op]
        assert same_floats(got, [reference.quantile(h["lower"], h["upper"], h["count"], q)
                                 for q in qs])
    w = expected["write"]
    for band, got_r, got_w in zip(expected["bands"], summary.band_read_q, summary.band_write_q):
        assert same_floats(got_r, [reference.quantile(w["lower"], w["upper"], band["read"], q)
                                   for q in qs])
        assert same_floats(got_w, [reference.quantile(w["lower"], w["upper"], band["write"], q)
                                   for q in qs])
    if not summary.reset:
        check_bins_grew_or_wrapped_within_ops(prev_page, cur_page, summary)


def check_bins_grew_or_wrapped_within_ops(prev, cur, summary):
    """A base bin's delta is its growth; a bin that went down is a wrap the op counter's
    growth accounts for, or no growth at all."""
    d = summary.delta
    for op, ops in (("read", "total_read_ops"), ("write", "total_write_ops")):
        before, now, got = (getattr(p, op).counts for p in (prev, cur, d))
        for p, c, g in zip(before, now, got):
            if c >= p:
                assert g == c - p
            else:
                assert g == 0 or g == c + WRAP - p <= d[ops]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_totals_across_layouts_agree_and_never_go_down(data):
    kind = data.draw(st.sampled_from(["ebs", "instance_store"]))
    totals, expected, last = devicecore.Totals(), None, None
    for _ in range(data.draw(st.integers(1, 3))):  # a run per layout, all of one kind
        layout = data.draw(layouts(kind=kind))
        values = data.draw(page_values(layout))
        prev = encode(layout, values)
        for _ in range(data.draw(st.integers(1, 3))):
            values = data.draw(successor(layout, values))
            cur = encode(layout, values)
            summary = native.delta(native.decode(prev), native.decode(cur))
            totals.add(summary.delta)
            d, _ = reference.delta(reference.decode(prev), reference.decode(cur))
            expected = reference.accumulate(expected, d)
            now = as_reference(totals.page)
            assert {k: v for k, v in now.items() if k != "version"} == {
                k: v for k, v in expected.items() if k not in ("version", "band_sums")}
            sums = [s for pair in totals.band_sums_us() for s in pair]
            assert same_floats(sums, [s for pair in expected["band_sums"] for s in pair])
            if last is not None:
                assert_not_below(now, last)
            last, prev = now, cur


def assert_not_below(now: dict, before: dict) -> None:
    """Totals only go up: every counter but the queue gauge, every bin of every histogram."""
    assert all(n >= b for i, (n, b) in enumerate(zip(now["counters"], before["counters"]))
               if i != reference.QUEUE)
    for op in ("read", "write"):
        assert all(n >= b for n, b in zip(now[op]["count"], before[op]["count"]))
    for nb, bb in zip(now["bands"], before["bands"]):
        assert all(n >= b for n, b in zip(nb["read"] + nb["write"], bb["read"] + bb["write"]))


def scenario(name: str) -> tuple[bytes, bytes]:
    """(previous, current) page for each case the delta rules single out."""
    layout = ("instance_store", [(lo, up) for lo, up in logpage.power_of_two_bounds(6)],
              (4096, logpage.NO_SIZE_BOUND), 1)
    prev = {"counters": {**dict.fromkeys(logpage.COUNTERS, 1000), "total_read_ops": 5000},
            "read": [10, 20, 2**32 - 10, 40, 50, 60], "write": [1, 2, 3, 4, 5, 6],
            "band_read": [[5] * 6, [7] * 6], "band_write": [[3] * 6, [4] * 6]}
    cur = copy.deepcopy(prev)
    for k in logpage.COUNTERS:
        cur["counters"][k] += 100
    if name == "one counter back":
        cur["counters"]["total_write_time"] = 990
    elif name == "one bin back by 1":
        cur["read"][4] -= 1
    elif name == "a wrap within the op growth":
        cur["read"][2] = 5  # 15 IOs past 2^32, read ops grew by 100
    elif name == "a wrap beyond the op growth":
        cur["read"][2], cur["counters"]["total_read_ops"] = 5, 5003
    elif name == "a band bin back":
        cur["band_write"][1][3] = 1
    elif name == "reset of a device that never wrote":
        prev["counters"].update(total_write_ops=0, total_write_bytes=0, total_write_time=0)
        cur["counters"].update(total_read_ops=7, total_write_ops=3, total_read_bytes=700,
                               total_read_time=70, total_write_bytes=12288,
                               total_write_time=300)
    elif name == "version 2":
        layout = layout[:3] + (2,)
    return encode(layout, prev), encode(layout, cur)


@pytest.mark.parametrize("name", [
    "one counter back", "one bin back by 1", "a wrap within the op growth",
    "a wrap beyond the op growth", "a band bin back", "reset of a device that never wrote",
    "version 2"])
def test_named_cases_agree_with_reference(name):
    prev, cur = scenario(name)
    expected, info = reference.delta(reference.decode(prev), reference.decode(cur))
    summary = native.delta(native.decode(prev), native.decode(cur))
    assert as_reference(summary.delta) == expected
    assert (summary.reset, summary.glitches, summary.glitch_count) == (
        info["reset"], info["glitches"], info["glitch_count"])
    assert summary.reset == (name == "reset of a device that never wrote")
    assert bool(summary.glitches) == (name in ("one counter back", "one bin back by 1",
                                               "a wrap beyond the op growth", "a band bin back"))
