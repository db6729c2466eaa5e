"""One call a poll (native/device.c): nm_device_step must fold every page in exactly as the
separate calls did (decode, nm_guard_step, quantiles, nm_accumulate from the device's first
page on), whatever the pages do: growth, glitches, wraps, restarts, lies, layout changes,
bad pages. Its steady-state fast path is checked against the general rules the same way."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nitrometer import native
from tests.native.pages import MAX64, WRAP, encode, layouts, page_values, realistic_page, successor
from tests.native.test_guard import page

QS = native.DEFAULT_QUANTILES


class Separate:
    """The poll as separate calls, as the agent made it before: Guard.sample, then the
    first baseline (from the device's zero) and each committed delta into Totals."""

    def __init__(self, bounds, qs):
        self.guard = native.Guard(*bounds)
        self.totals = native.Totals()
        self.first = None
        self.qs = qs

    def step(self, raw: bytes, t: float):
        try:
            page, summary = self.guard.sample(raw, t, self.qs)
        except native.LayoutChanged as exc:
            if self.totals.empty:
                self.first = exc.page
            return ("layout", exc.code), None
        except native.PageError as exc:
            return ("error", exc.code), None
        if summary.baseline and self.totals.empty:
            self.first = page
        if summary.held or summary.baseline:
            return ("flags", summary.flags), None
        if self.first is not None:
            self.totals.add(self.first)
            self.first = None
        self.totals.add(summary.delta)
        return ("flags", summary.flags), summary


def one_call(device: native.Device, raw: bytes, t: float):
    try:
        flags = device.step(raw, t)
    except native.LayoutChanged as exc:
        return ("layout", exc.code), None
    except native.PageError as exc:
        return ("error", exc.code), None
    if flags & (native.lib.NM_DELTA_HELD | native.lib.NM_DELTA_BASELINE):
        return ("flags", flags), None
    return ("flags", flags), device.summary()


def same_floats(a, b) -> bool:
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y))
                                    for x, y in zip(a, b))


def page_state(page: native.Page) -> tuple:
    return (page.counters, page.read.counts, page.write.counts,
            [(band.low, band.high, band.read.counts, band.write.counts) for band in page.bands])


def assert_same_summary(got: native.Summary, want: native.Summary) -> None:
    assert page_state(got.delta) == page_state(want.delta)
    assert (got.flags, got.glitches, got.dropped, got.glitch_count, got.reset) == (
        want.flags, want.glitches, want.dropped, want.glitch_count, want.reset)
    for q_got, q_want in zip(got._quantiles(), want._quantiles()):
        assert same_floats(q_got, q_want)
    assert got.band_read_ops == want.band_read_ops
    assert got.band_write_ops == want.band_write_ops


def assert_same_totals(got: native.Totals, want: native.Totals) -> None:
    assert got.empty == want.empty
    if want.empty:
        return
    assert page_state(got.page) == page_state(want.page)
    assert got.band_sums_us() == want.band_sums_us()
    assert (got.band_ios_unplaced, got.band_ios_widened) == (
        want.band_ios_unplaced, want.band_ios_widened)


def run_both(pages, times, bounds, qs=QS):
    separate, device = Separate(bounds, qs), native.Device(*bounds, qs)
    for raw, t in zip(pages, times):
        want_rc, want = separate.step(raw, t)
        got_rc, got = one_call(device, raw, t)
        assert got_rc == want_rc
        if want is not None:
            assert_same_summary(got, want)
        assert_same_totals(device.totals, separate.totals)
    return device


@st.composite
def steady(draw, prev):
    """A busy device's next page: every field grows a little (bins may wrap, totals may
    reach 2^64 - 1), as on almost every poll."""
    def grow(c, wrap=None):
        c += draw(st.integers(0, 1000))
        return c % wrap if wrap else min(c, MAX64)
    cur = {"counters": {k: grow(v) for k, v in prev["counters"].items()},
           "read": [grow(c, WRAP) for c in prev["read"]],
           "write": [grow(c, WRAP) for c in prev["write"]],
           "band_read": [[grow(c) for c in b] for b in prev["band_read"]],
           "band_write": [[grow(c) for c in b] for b in prev["band_write"]]}
    cur["counters"]["volume_queue_length"] = draw(st.integers(0, 64))
    return cur


BOUNDS = st.sampled_from([(1e7, 2e10), (1e3, 1e6), (5e5, 1e12)])


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_one_call_folds_any_pages_in_as_the_separate_calls(data):
    layout = data.draw(layouts())
    values = data.draw(page_values(layout))
    pages, times, t = [], [], 0.0
    for _ in range(data.draw(st.integers(1, 12))):
        pages.append(encode(layout, values))
        times.append(t)
        t += data.draw(st.sampled_from([1.0, 1.0, 0.5, 3.0, 0.0]))
        roll = data.draw(st.integers(0, 9))
        if roll == 0:  # another layout: a new baseline
            layout = data.draw(layouts(kind=layout[0]))
            values = data.draw(page_values(layout))
        elif roll == 1:  # a page the decoder refuses: nothing changes
            pages.append(pages[-1][:100])
            times.append(t)
        elif roll < 6:
            values = data.draw(steady(values))
        else:
            values = data.draw(successor(layout, values))
    qs = data.draw(st.sampled_from([QS, (0.99, 0.5, 1.0, 0.0), ()]))
    run_both(pages, times, data.draw(BOUNDS), qs)


def growing(kind: str, n: int) -> list[bytes]:
    """A busy device's pages a second apart: each grows by what the first page holds."""
    return [realistic_page(kind, seed=5, scale=k) for k in range(1, n + 1)]


@pytest.mark.parametrize("kind", ["instance_store", "ebs"])
def test_a_device_in_its_steady_state_gets_the_general_rules_results(kind):
    pages = growing(kind, 30)
    device = run_both(pages, [float(t) for t in range(len(pages))], (1e9, 1e15))
    summary = device.summary()
    assert summary.flags == 0 and summary.read_q[0] > 0  # committed, with real quantiles
    assert device.totals.page["total_read_ops"] == native.decode(pages[-1])["total_read_ops"]


def test_a_page_as_bytearray_or_memoryview_is_read_the_same():
    pages = growing("instance_store", 3)
    device = native.Device(1e9, 1e15)
    device.step(pages[0], 0.0)
    device.step(bytearray(pages[1]), 1.0)
    assert device.step(memoryview(pages[2]), 2.0) == 0
    assert device.totals.page["total_read_ops"] == native.decode(pages[2])["total_read_ops"]


def test_quantiles_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError):
        native.Device(1e9, 1e15, (0.5, 1.5))


def test_totals_past_2_to_the_64_stop_there_on_every_path():
    # A device near the top of its time counter restarts: the totals count on across the
    # restart, in the steady state too, and stop at 2^64 - 1 rather than wrap.

    near_top = MAX64 - 200_000
    pages = [page(s, total_read_time=near_top + 1000 * s) for s in range(10, 13)]
    pages += [page(s) for s in range(1, 8)]  # every traffic counter back: a restart
    device = run_both(pages, [float(t) for t in range(len(pages))], (1e4, 1e9))
    assert device.totals.page["total_read_time"] == MAX64
