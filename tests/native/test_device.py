"""One call a poll (native/device.c): nm_device_step must fold every page in exactly as the
separate calls did (decode, nm_guard_step, quantiles, nm_accumulate from the device's first
page on), whatever the pages do: growth, glitches, wraps, restarts, lies, layout changes,
bad pages. Its steady-state fast path is checked against the general rules the same way."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nitrometer import devicecore, logpage, native
from tests.native.pages import (
    MAX64,
    WRAP,
    bins_from,
    encode,
    layouts,
    page_values,
    realistic_page,
    successor,
)
from tests.native.test_guard import page

QS = native.DEFAULT_QUANTILES


class Separate:
    """The poll as separate calls, as the agent made it before: Guard.sample, then the
    first baseline (from the device's zero) and each committed delta into Totals."""

    def __init__(self, bounds, qs):
        self.guard = devicecore.Guard(*bounds)
        self.totals = devicecore.Totals()
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


def one_call(device: devicecore.Device, raw: bytes, t: float):
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


def assert_same_totals(got: devicecore.Totals, want: devicecore.Totals) -> None:
    assert got.empty == want.empty
    if want.empty:
        return
    assert page_state(got.page) == page_state(want.page)
    assert got.band_sums_us() == want.band_sums_us()
    assert (got.band_ios_unplaced, got.band_ios_widened) == (
        want.band_ios_unplaced, want.band_ios_widened)


def run_both(pages, times, bounds, qs=QS):
    separate, device = Separate(bounds, qs), devicecore.Device(*bounds, qs)
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
    device = devicecore.Device(1e9, 1e15)
    device.step(pages[0], 0.0)
    device.step(bytearray(pages[1]), 1.0)
    assert device.step(memoryview(pages[2]), 2.0) == 0
    assert device.totals.page["total_read_ops"] == native.decode(pages[2])["total_read_ops"]


def test_quantiles_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError):
        devicecore.Device(1e9, 1e15, (0.5, 1.5))


def test_totals_past_2_to_the_64_stop_there_on_every_path():
    # A device near the top of its time counter restarts: the totals count on across the
    # restart, in the steady state too, and stop at 2^64 - 1 rather than wrap.

    near_top = MAX64 - 200_000
    pages = [page(s, total_read_time=near_top + 1000 * s) for s in range(10, 13)]
    pages += [page(s) for s in range(1, 8)]  # every traffic counter back: a restart
    device = run_both(pages, [float(t) for t in range(len(pages))], (1e4, 1e9))
    assert device.totals.page["total_read_time"] == MAX64


def shifting_pages(kind: str, hot_bins: list[int], bounds=None, moved=None,
                   moved_from: int = 0) -> list[bytes]:
    """A device's pages a second apart whose traffic moves poll by poll: each poll adds IO
    around its hot bin (reads) and the bin above it (writes), so every quantile walks up
    or down from the bin it fell in the poll before; a hot bin of -1 adds no IO at all.
    From page moved_from on, the bins have moved's bounds instead (counts going on)."""
    bounds = bounds or logpage.power_of_two_bounds(28)
    read, write, pages = [0] * len(bounds), [0] * len(bounds), []
    for k, hot in enumerate(hot_bins):
        if moved and k == moved_from:
            bounds = moved
        if hot >= 0:
            for offset, share in ((-1, 5), (0, 80), (1, 14), (2, 1)):
                read[max(0, min(hot + offset, len(bounds) - 1))] += 10 * share
                write[max(0, min(hot + 1 + offset, len(bounds) - 1))] += 3 * share
        ops_r, ops_w = sum(read), sum(write)
        counters = {"total_read_ops": ops_r, "total_write_ops": ops_w,
                    "total_read_bytes": ops_r * 4096, "total_write_bytes": ops_w * 8192,
                    "total_read_time": ops_r * 50, "total_write_time": ops_w * 70,
                    "volume_queue_length": hot % 7}
        kw = {}
        if kind == "instance_store":
            kw = {"band_sizes": (4096, 0xFFFFFFFF), "version": 1,
                  "band_read": [[c // 2 for c in read[:32]], [c - c // 2 for c in read[:32]]],
                  "band_write": [write[:32], [0] * len(bounds[:32])]}
        pages.append(logpage.encode_page(kind, counters, bins_from(bounds, read),
                                         bins_from(bounds, write), **kw))
    return pages


@pytest.mark.parametrize("kind", ["ebs", "instance_store"])
def test_quantiles_that_move_poll_to_poll_are_the_general_rules_quantiles(kind):
    hot = [3, 3, 9, 20, 26, 27, 0, 0, 14, -1, 13, 27, 1, 6, 5, 5, -1, -1, 22, 2]
    bounds = logpage.power_of_two_bounds(28 if kind == "ebs" else 30)
    pages = shifting_pages(kind, hot, bounds)
    device = run_both(pages, [float(t) for t in range(len(pages))], (1e9, 1e15),
                      (0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0))
    assert device.summary().flags == 0 and not math.isnan(device.summary().read_q[2])


@pytest.mark.parametrize("kind", ["ebs", "instance_store"])
def test_bin_bounds_that_change_alone_in_the_steady_state_are_a_new_layout(kind):
    # The same kind, version, length and bands: only the histograms' bin bounds tell.
    bounds = logpage.power_of_two_bounds(28)
    moved = [*bounds[:-2], (bounds[-2][0], bounds[-2][1] + 1), (bounds[-1][0] + 1,
                                                                  bounds[-1][1])]
    pages = shifting_pages(kind, [4, 5, 6, 7, 7, 8], bounds, moved=moved, moved_from=4)
    separate, device = Separate((1e9, 1e15), QS), devicecore.Device(1e9, 1e15)
    got = [one_call(device, raw, float(t))[0] for t, raw in enumerate(pages)]
    assert got[4] == ("layout", native.lib.NM_ELAYOUT)
    assert got[5] == ("flags", 0)  # counted from the new layout's first page
    run_both(pages, [float(t) for t in range(len(pages))], (1e9, 1e15))
    assert [separate.step(raw, float(t))[0] for t, raw in enumerate(pages)] == got


def test_bounds_tightened_between_steady_polls_hold_the_growth_past_them():
    pages = shifting_pages("ebs", [5, 5, 5, 5, 5])
    device = devicecore.Device(1e9, 1e15)
    assert [device.step(raw, float(t)) for t, raw in enumerate(pages[:3])] == [
        native.lib.NM_DELTA_BASELINE, 0, 0]
    device.bounds = (100.0, 1e6)  # 1,000 reads a poll is past 100 a second (+ 1 s slack)
    assert device.step(pages[3], 3.0) & native.lib.NM_DELTA_HELD
    device.bounds = (1e9, 1e15)
    # under the old bounds again the next page grew plausibly from the baseline
    assert device.step(pages[4], 4.0) & native.lib.NM_DELTA_DROPPED
