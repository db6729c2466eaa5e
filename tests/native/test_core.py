"""The C core on hand-made pages: every field, every error, wraps, resets, quantiles."""

import math
import struct

import pytest

from nitrometer import devicecore, logpage, native
from tests.native.pages import realistic_page


def patched(page: bytes, offset: int, fmt: str, *values) -> bytes:
    buf = bytearray(page)
    struct.pack_into(fmt, buf, offset, *values)
    return bytes(buf)


def test_instance_store_page_decodes_every_field():
    page = native.decode(realistic_page("instance_store"))
    assert (page.kind, page.version) == ("instance_store", 1)
    assert page["volume_queue_length"] == 3
    assert page["total_read_bytes"] == page["total_read_ops"] * 4096
    assert page.read.num_bins == 24 and page.read.lower[:3] == [0, 1, 2]
    assert page.read.upper[-1] == logpage.OPEN_ENDED_US
    assert [b.high for b in page.bands] == [512, 4096, 8192, 32768, None]
    assert [b.low for b in page.bands] == [0, 512, 4096, 8192, 32768]
    assert page.bands[2].read.counts == [c // 5 for c in page.read.counts]
    assert page.bands[0].read.upper == page.write.upper  # bands share the write bounds


def test_ebs_page_has_no_bands_and_keeps_volume_counters():
    page = native.decode(realistic_page("ebs"))
    assert (page.kind, page.version, page.bands) == ("ebs", 0, [])
    assert page["ebs_volume_performance_exceeded_tp"] == 250
    assert "io_size_histograms" not in page.to_dict()


def test_magic_is_compared_as_u32_whatever_the_version():
    page = realistic_page("ebs")
    assert native.decode(patched(page, 4, "<I", 1)).version == 1  # EBS page with version 1


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p[:4095], "shorter"),
    (lambda p: p[:8191], "shorter"),  # instance store version 1 needs the detail half
    (lambda p: patched(p, 0, "<I", 0xDEADBEEF), "not an EC2 NVMe"),
    (lambda p: patched(p, 512, "<Q", 65), "more than 64 bins"),
    (lambda p: patched(p, 3600, "<I", 9), "more than 8 IO-size bands"),
    (lambda p: patched(p, 512 + 8 + 24 * 3, "<Q", 10**9), "not increasing"),
    # Last two bins end at 2^60 and 2^60 + 1 us: one double in seconds, one le label.
    (lambda p: patched(p, 512 + 8 + 24 * 22 + 8, "<QIIQQ", 2**60, 0, 0, 2**60, 2**60 + 1),
     "apart in seconds"),
    (lambda p: patched(p, 3604 + 4, "<I", 100), "band bounds"),
])
def test_each_malformation_has_its_own_error(mutate, message):
    with pytest.raises(native.PageError, match=message):
        native.decode(mutate(realistic_page("instance_store")))


def test_detail_needs_at_most_32_bins():
    bins = [(lo, up, 1) for lo, up in logpage.power_of_two_bounds(33)]
    page = logpage.encode_page("instance_store", {}, bins, bins, band_sizes=(512,),
                               band_read=[[1] * 32], band_write=[[1] * 32])
    with pytest.raises(native.PageError, match="at most 32 bins"):
        native.decode(page)
    assert native.decode(patched(page, 4, "<I", 0)).write.num_bins == 33  # no detail: fine


def test_u32_bins_wrap_and_u64_counters_subtract():
    prev = native.decode(realistic_page("instance_store", scale=1))
    buf = bytearray(realistic_page("instance_store", scale=1))
    struct.pack_into("<I", buf, 512 + 8 + 24 * 7 + 16, 5)  # bin 7 went 3000 -> 2**32 + 5
    struct.pack_into("<Q", buf, 8, prev["total_read_ops"] + 2**32 + 5 - 3000)
    s = native.delta(prev, native.decode(bytes(buf)))
    assert not s.reset and s.glitches == ()
    d = s.delta
    assert d.read.counts[7] == 2**32 + 5 - 3000
    assert d.read.counts[8] == 0
    assert d["total_read_ops"] == 2**32 + 5 - 3000
    assert d["volume_queue_length"] == 3  # point in time: the newer page's value


def test_op_counters_going_down_are_a_reset_not_a_negative_delta():
    big = native.decode(realistic_page("instance_store", scale=10))
    small = native.decode(realistic_page("instance_store", scale=1))
    s = native.delta(big, small)
    assert s.reset and s.glitches == () and s.glitch_count == 0
    assert s.delta.counters == small.counters and s.delta.read.counts == small.read.counts


def test_delta_refuses_pages_of_different_layout():
    with pytest.raises(native.PageError, match="kind or histogram layout"):
        native.delta(native.decode(realistic_page("ebs")),
                     native.decode(realistic_page("instance_store")))


def hist_page(counts, bounds=None):
    bounds = bounds or logpage.power_of_two_bounds(len(counts))
    bins = [(lo, up, c) for (lo, up), c in zip(bounds, counts)]
    return native.decode(logpage.encode_page("ebs", {}, bins, bins))


def test_quantiles_interpolate_inside_a_bin():
    page = hist_page([0, 0, 0, 0, 100, 0, 0, 0])  # all in [8, 16)
    assert page.read.quantiles([0.5, 0.25, 1.0]) == [12.0, 10.0, 16.0]


def test_open_ended_last_bin_reports_its_lower_bound():
    page = hist_page([0, 10, 0, 90])
    assert page.read.quantiles([0.99]) == [4.0]


def test_empty_histogram_gives_nan_and_bad_q_is_refused():
    page = hist_page([0] * 8)
    assert all(math.isnan(q) for q in page.read.quantiles())
    with pytest.raises(ValueError, match="outside"):
        page.read.quantiles([1.5])


def test_merge_bins_into_coarser_buckets():
    page = hist_page([1, 2, 3, 4, 5, 6, 7, 8])  # uppers 1, 2, 4, 8, 16, 32, 64, open
    assert native.merge_bins(page.read, [2, 16, 64]) == [3, 12, 13, 8]


def test_summarize_matches_separate_calls():
    prev = native.decode(realistic_page("instance_store", scale=1))
    cur = native.decode(realistic_page("instance_store", scale=3))
    s = native.summarize(prev, cur)
    plain = native.delta(prev, cur)
    d = plain.delta
    assert s.reset == plain.reset and s.delta.counters == d.counters
    assert s.read_q == d.read.quantiles() and s.write_q == d.write.quantiles()
    assert s.band_read_q == [b.read.quantiles() for b in d.bands]
    assert s.band_write_q == [b.write.quantiles() for b in d.bands]


def test_summary_counts_ios_per_band():
    prev = native.decode(realistic_page("instance_store", scale=1))
    cur = native.decode(realistic_page("instance_store", scale=4))
    s = native.summarize(prev, cur)
    assert s.band_read_ops == [b.read.total for b in s.delta.bands]
    assert s.band_write_ops == [b.write.total for b in s.delta.bands]
    assert sum(s.band_read_ops) > 0


def test_totals_add_deltas_and_never_go_down():
    pages = [native.decode(realistic_page("instance_store", scale=k)) for k in (1, 3, 2, 5)]
    totals = devicecore.Totals()
    assert totals.empty
    for prev, cur in zip(pages, pages[1:]):
        totals.add(native.delta(prev, cur).delta)  # 1 -> 3, a reset (3 -> 2), then 2 -> 5
    assert not totals.empty
    expected_ops = (3 - 1) + 2 + (5 - 2)
    assert totals.page["total_read_ops"] == expected_ops * pages[0]["total_read_ops"]
    assert totals.page["volume_queue_length"] == 3  # point in time, not summed
    assert totals.page.read.counts == [c * expected_ops for c in pages[0].read.counts]
    band = totals.page.bands[1]
    p0, p1, p2, p3 = (p.bands[1].read.counts for p in pages)
    assert band.read.counts == [(b - a) + c + (d - c) for a, b, c, d in zip(p0, p1, p2, p3)]
    # Band time is estimated at each bin's midpoint; the open last bin at its lower bound.
    lower, upper = band.read.lower, band.read.upper
    mids = [(lo + up) / 2 for lo, up in zip(lower[:-1], upper[:-1])] + [lower[-1]]
    read_us, write_us = totals.band_sums_us()[1]
    assert read_us == pytest.approx(sum(m * c for m, c in zip(mids, band.read.counts)))
    assert write_us == pytest.approx(sum(m * c for m, c in zip(mids, band.write.counts)))


def test_totals_refuse_a_delta_of_another_kind():
    totals = devicecore.Totals()
    totals.add(native.decode(realistic_page("instance_store")))
    with pytest.raises(native.PageError, match="kind or histogram layout"):
        totals.add(native.decode(realistic_page("ebs")))


def test_sample_is_decode_then_summarize_in_one_call():
    prev = native.decode(realistic_page("instance_store", scale=2))
    raw = realistic_page("instance_store", scale=5)
    page, s = native.sample(prev, raw)
    expected = native.summarize(prev, native.decode(raw))
    assert page.to_dict() == native.decode(raw).to_dict()
    assert s.delta.counters == expected.delta.counters and s.reset == expected.reset
    assert (s.read_q, s.write_q) == (expected.read_q, expected.write_q)
    assert (s.band_read_q, s.band_write_q) == (expected.band_read_q, expected.band_write_q)
    assert len(s.band_read_q) == 5 and all(len(q) == 4 for q in s.band_write_q)


def test_sample_reports_a_new_layout_with_the_decoded_page():
    prev = native.decode(realistic_page("instance_store"))
    with pytest.raises(native.LayoutChanged) as caught:
        native.sample(prev, realistic_page("ebs"))
    assert caught.value.page.kind == "ebs"
    with pytest.raises(native.PageError, match="not an EC2"):
        native.sample(prev, b"\0" * 8192)


def test_decode_refuses_exactly_the_bounds_whose_le_labels_collide():
    from nitrometer.agent.exposition import le_strings

    far, outcomes = 2**60, set()
    for step in (1, 64, 128, 200, 256, 512, 4096):
        bounds = [(0, far), (far, far + step), (far + step, logpage.OPEN_ENDED_US)]
        les = le_strings([up for _, up in bounds])  # the last bin is +Inf whatever its bound
        collide = les[0] == les[1]
        if collide:
            with pytest.raises(native.PageError, match="apart in seconds"):
                hist_page([1, 2, 3], bounds)
        else:
            assert hist_page([1, 2, 3], bounds).read.upper == [up for _, up in bounds]
        outcomes.add(collide)
    assert outcomes == {True, False}
