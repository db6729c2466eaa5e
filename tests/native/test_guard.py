"""Counters that obey physics (native/guard.c): what reaches the running totals when pages
lie, one at a time or flapping, and when the device really restarted or really jumped."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nitrometer import devicecore, logpage, native

BOUNDS = logpage.power_of_two_bounds(8)
OPS, SIZE, LATENCY_US = 1000, 4096, 90  # per second, per IO


def page(seconds: int, **override) -> bytes:
    """A device that does OPS reads and OPS/2 writes a second, `seconds` after it started."""
    reads, writes = OPS * seconds, OPS // 2 * seconds
    values = {"total_read_ops": reads, "total_write_ops": writes,
              "total_read_bytes": reads * SIZE, "total_write_bytes": writes * SIZE,
              "total_read_time": reads * LATENCY_US, "total_write_time": writes * LATENCY_US}
    values.update(override)
    read = [0, 0, 0, 0, 0, 0, reads, 0]
    write = [0, 0, 0, 0, 0, 0, writes, 0]
    return logpage.encode_page("ebs", values, [(lo, up, c) for (lo, up), c in zip(BOUNDS, read)],
                               [(lo, up, c) for (lo, up), c in zip(BOUNDS, write)])


def run(pages: list[bytes]) -> tuple[dict, list[native.Summary]]:
    """Feed pages one a second and add up what was committed as the agent does: the first
    baseline from the device's zero once an interval is committed, then each delta."""
    guard = devicecore.Guard(ops_per_s=10 * OPS, bytes_per_s=10 * OPS * SIZE)
    totals, steps, first = devicecore.Totals(), [], None
    for t, raw in enumerate(pages):
        decoded, summary = guard.sample(raw, float(t))
        steps.append(summary)
        if summary.baseline and totals.empty:
            first = decoded
        elif not (summary.held or summary.baseline):
            if first is not None:
                totals.add(first)
                first = None
            totals.add(summary.delta)
    counters = totals.page.counters if not totals.empty else {}
    return counters, steps


def test_a_spike_of_10_to_the_12_is_held_then_dropped():
    pages = [page(s) for s in range(5)]
    pages[2] = page(2, total_read_ops=2 * OPS + 10**12)
    totals, steps = run(pages)
    assert totals["total_read_ops"] == 4 * OPS and totals["total_write_ops"] == 2 * OPS
    assert steps[2].held and steps[3].dropped == ("total_read_ops",)
    assert not any(s.reset for s in steps)


def test_a_counter_at_2_to_the_64_minus_1_is_dropped():
    pages = [page(s) for s in range(5)]
    pages[3] = page(3, total_write_ops=2**64 - 1)
    totals, steps = run(pages)
    assert totals["total_write_ops"] == 4 * OPS // 2
    assert steps[4].dropped == ("total_write_ops",)


def test_a_jump_the_next_page_confirms_is_committed():
    jump = 10**9
    pages = [page(0), page(1), page(2, total_read_ops=2 * OPS + jump),
             page(3, total_read_ops=3 * OPS + jump)]
    totals, steps = run(pages)
    assert totals["total_read_ops"] == 3 * OPS + jump
    assert steps[2].held and steps[3].flags & native.lib.NM_DELTA_CONFIRMED


def test_read_ops_back_by_one_on_a_device_that_never_wrote_is_no_reset():
    quiet = {"total_write_ops": 0, "total_write_bytes": 0, "total_write_time": 0}
    pages = [page(s, **quiet) for s in range(6)]
    for s in (2, 4):  # flapping: one behind the page before it, twice
        pages[s] = page(s, total_read_ops=(s - 1) * OPS - 1, **quiet)
    totals, steps = run(pages)
    assert not any(s.reset for s in steps)
    assert totals["total_read_ops"] == 5 * OPS  # the device's growth, nothing counted twice
    assert [s.glitches for s in steps[1:]] == [(), ("total_read_ops",), (),
                                               ("total_read_ops",), ()]


def test_a_zeroed_page_from_the_transport_is_no_restart():
    pages = [page(s) for s in range(5)]
    pages[2] = page(0)
    totals, steps = run(pages)
    assert totals["total_read_ops"] == 4 * OPS
    assert steps[2].held and not any(s.reset for s in steps)


def test_a_restart_is_committed_once_the_next_page_counts_on_from_it():
    pages = [page(10), page(11), page(1), page(2), page(3)]
    totals, steps = run(pages)
    assert steps[2].held and steps[3].reset
    # Its first page, 1 s before the restart, then all it counted since it: 2 s, then 1 s.
    assert totals["total_read_ops"] == 10 * OPS + OPS + 2 * OPS + OPS


def test_totals_never_grow_faster_than_the_bounds():
    pages = [page(s, total_read_ops=10**15 * s) for s in range(4)]
    totals, steps = run(pages)
    assert totals.get("total_read_ops", 0) < 2**53
    assert all(s.held or s.baseline for s in steps[1:])


def test_a_spiked_first_page_does_not_become_the_baseline():
    pages = [page(s) for s in range(5)]
    pages[0] = page(0, total_read_ops=10**12)
    totals, steps = run(pages)
    assert steps[0].baseline and steps[1].baseline  # the second page took its place
    assert totals["total_read_ops"] == 4 * OPS and not any(s.glitches for s in steps)


@settings(max_examples=200, deadline=None)
@given(growth=st.lists(st.integers(0, 5 * OPS), min_size=4, max_size=30),
       lies=st.dictionaries(st.integers(1, 29), st.sampled_from(
           ["spike", "max", "zero", "back"]), max_size=4))
def test_totals_equal_the_true_growth_within_one_interval(growth, lies):
    truth = [0]
    for g in growth:
        truth.append(truth[-1] + g)
    pages = [page(0, total_read_ops=v) for v in truth]
    lied = sorted(i for i in lies if i < len(pages) - 1 and i - 1 not in lies)
    for i in lied:
        lie = lies[i]
        value = {"spike": truth[i] + 10**12, "max": 2**64 - 1, "zero": 0,
                 "back": max(truth[i - 1] - 1, 0)}[lie]
        pages[i] = page(0, total_read_ops=value)
    totals, steps = run(pages)
    assert not any(s.reset for s in steps)
    assert truth[-1] - max(growth) <= totals.get("total_read_ops", 0) <= truth[-1]
