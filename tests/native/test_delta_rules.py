"""The delta rules on hand-made pages: resets, glitches, wraps, totals across layouts,
newer page versions (docs/logpage.md)."""

from __future__ import annotations

import struct

import pytest

from nitrometer import devicecore, logpage, native

BOUNDS = logpage.power_of_two_bounds(8)
SIZES = (4096, logpage.NO_SIZE_BOUND)
BASE_COUNTERS = {
    "total_read_ops": 1000, "total_write_ops": 500, "total_read_bytes": 4096000,
    "total_write_bytes": 2048000, "total_read_time": 90000, "total_write_time": 60000,
    "ec2_instance_performance_exceeded_iops": 70, "volume_queue_length": 4,
}
READ = [0, 10, 100, 400, 300, 150, 40, 0]
WRITE = [0, 5, 50, 200, 150, 75, 20, 0]
BAND_READ = [[0, 5, 50, 200, 150, 75, 20, 0], [0, 5, 50, 200, 150, 75, 20, 0]]
BAND_WRITE = [[0, 2, 25, 100, 75, 30, 10, 0], [0, 3, 25, 100, 75, 45, 10, 0]]


def page(read=READ, write=WRITE, band_read=BAND_READ, band_write=BAND_WRITE, bounds=BOUNDS,
         sizes=SIZES, version=None, **counters):
    values = dict(BASE_COUNTERS, **counters)
    return native.decode(logpage.encode_page(
        "instance_store", values, [(lo, up, c) for (lo, up), c in zip(bounds, read)],
        [(lo, up, c) for (lo, up), c in zip(bounds, write)], version=version,
        band_sizes=sizes if band_read else (), band_read=band_read, band_write=band_write))


def grown(values, by):
    return [v + by for v in values]


def test_one_counter_stepping_back_grows_by_zero_and_the_rest_stays_exact():
    prev = page()
    cur = page(read=grown(READ, 1), total_read_ops=1008, total_read_time=89990)
    s = native.delta(prev, cur)
    assert not s.reset
    assert s.glitches == ("total_read_time",) and s.glitch_count == 1
    assert s.delta["total_read_time"] == 0
    assert s.delta["total_read_ops"] == 8 and s.delta.read.counts == [1] * 8
    assert s.delta["total_write_ops"] == 0 and s.delta["volume_queue_length"] == 4


def test_a_base_bin_down_by_one_is_a_glitch_not_four_billion_ios():
    prev = page()
    read = grown(READ, 2)
    read[3] = READ[3] - 1
    s = native.delta(prev, page(read=read, total_read_ops=1014))
    assert s.glitches == ("read_bins",) and s.glitch_count == 1
    assert s.delta.read.counts == [2, 2, 2, 0, 2, 2, 2, 2]
    assert s.delta["total_read_ops"] == 14


def test_a_wrap_the_op_counter_accounts_for_is_growth():
    read = list(READ)
    read[2] = 2**32 - 10
    prev = page(read=read)
    read[2] = 5  # 15 IOs past 2^32
    s = native.delta(prev, page(read=read, total_read_ops=1015))
    assert s.glitches == () and not s.reset
    assert s.delta.read.counts[2] == 15


def test_a_wrap_bigger_than_the_op_growth_is_a_glitch():
    read = list(READ)
    read[2] = 2**32 - 10
    prev = page(read=read)
    read[2] = 5
    write = grown(WRITE, 100)  # the write ops growth does not count for read bins
    s = native.delta(prev, page(read=read, write=write, total_read_ops=1003,
                                total_write_ops=1300))
    assert s.glitches == ("read_bins",) and s.delta.read.counts[2] == 0
    assert s.delta.write.counts == [100] * 8


NEVER_WROTE = {"total_write_ops": 0, "total_write_bytes": 0, "total_write_time": 0}


def test_reset_when_every_traffic_counter_that_counted_went_down():
    prev = page(**NEVER_WROTE)
    cur = page(read=[0, 1, 2, 3, 0, 0, 0, 0], total_read_ops=6, total_read_bytes=24576,
               total_read_time=600, total_write_ops=4, total_write_bytes=0,
               total_write_time=0)
    s = native.delta(prev, cur)
    assert s.reset and s.glitches == ()
    assert s.delta.counters == cur.counters and s.delta.read.counts == [0, 1, 2, 3, 0, 0, 0, 0]


def test_read_ops_back_by_one_on_a_device_that_never_wrote_is_a_glitch_not_a_reset():
    prev = page(**NEVER_WROTE)
    cur = page(read=grown(READ, 1), total_read_ops=999, total_read_bytes=4100096,
               total_read_time=90900, **NEVER_WROTE)
    s = native.delta(prev, cur)
    assert not s.reset and s.glitches == ("total_read_ops",)
    assert s.delta["total_read_ops"] == 0 and s.delta["total_read_bytes"] == 4096


def test_one_op_counter_down_while_the_other_counts_on_is_a_glitch():
    s = native.delta(page(), page(write=grown(WRITE, 1), total_read_ops=999,
                                  total_write_ops=508))
    assert not s.reset and s.glitches == ("total_read_ops",)
    assert s.delta["total_read_ops"] == 0 and s.delta["total_write_ops"] == 8


def test_queue_length_is_a_gauge_and_band_bins_glitch_on_their_own():
    band_read = [list(b) for b in BAND_READ]
    band_read[1][4] -= 3
    band_read[0][1] -= 1
    s = native.delta(page(), page(band_read=band_read, volume_queue_length=0))
    assert s.glitches == ("band_bins",) and s.glitch_count == 2
    assert s.delta["volume_queue_length"] == 0
    assert s.delta.bands[1].read.counts == [0] * 8


def test_totals_keep_their_layout_and_fold_other_bins_in():
    totals = devicecore.Totals()
    totals.add(native.delta(page(), page(read=grown(READ, 1))).delta)
    # The device now reports 4 coarser bins: [0,2], [2,8], [8,32], [32, max].
    coarse = [(0, 2), (2, 8), (8, 32), (32, logpage.OPEN_ENDED_US)]
    prev = page(bounds=coarse, read=[0] * 4, write=[0] * 4, band_read=(), band_write=())
    cur = page(bounds=coarse, read=[1, 2, 3, 4], write=[5, 0, 0, 7], band_read=(),
               band_write=())
    totals.add(native.delta(prev, cur).delta)
    assert totals.page.read.upper == [u for _, u in BOUNDS]
    #  uppers 1, 2, 4, 8, 16, 32, 64, max: 2 -> bin 1, 8 -> bin 3, 32 -> bin 5, max -> last.
    assert totals.page.read.counts == [1, 1 + 1, 1, 1 + 2, 1, 1 + 3, 1, 1 + 4]
    assert totals.page.write.counts == [0, 5, 0, 0, 0, 0, 0, 7]
    assert [b.read.counts for b in totals.page.bands] == [[0] * 8, [0] * 8]  # no bands: none


def test_totals_match_bands_by_their_upper_size_bound():
    totals = devicecore.Totals()
    totals.add(native.delta(page(), page()).delta)  # bands (0, 4K], (4K, max]
    sizes = (512, 8192, 65536)
    zero = [[0] * 8] * 3
    ones = [[1] * 8, [2] * 8, [3] * 8]
    prev = page(sizes=sizes, band_read=zero, band_write=zero)
    cur = page(sizes=sizes, band_read=ones, band_write=zero)
    totals.add(native.delta(prev, cur).delta)
    # 512 goes into (0, 4K]; 8K and 64K into (4K, max].
    assert [b.read.counts for b in totals.page.bands] == [[1] * 8, [5] * 8]
    read_us = [r for r, _ in totals.band_sums_us()]
    mids = [(lo + up) / 2 for lo, up in BOUNDS[:-1]] + [BOUNDS[-1][0]]
    assert read_us == pytest.approx([sum(mids), 5 * sum(mids)])


def test_totals_never_refuse_the_same_kind():
    totals = devicecore.Totals()
    totals.add(page())
    totals.add(page(bounds=[(0, 10), (10, 20)], read=[1, 1], write=[1, 1], band_read=()))
    assert totals.page.read.counts == [c + (1 if i in (4, 5) else 0) for i, c in
                                       enumerate(READ)]  # 10 -> [8, 16], 20 -> [16, 32]


def version_page(version, raw_len=8192, num_hists=None):
    buf = bytearray(logpage.encode_page(
        "instance_store", BASE_COUNTERS, [(lo, up, c) for (lo, up), c in zip(BOUNDS, READ)],
        [(lo, up, c) for (lo, up), c in zip(BOUNDS, WRITE)], version=version,
        band_sizes=SIZES, band_read=BAND_READ, band_write=BAND_WRITE))
    if num_hists is not None:
        struct.pack_into("<I", buf, logpage.OFF_NUM_HISTS, num_hists)
    return bytes(buf[:raw_len])


def test_a_newer_version_decodes_by_the_layout_it_shares():
    newer = native.decode(version_page(2))
    assert newer.version == 2
    assert newer.read.counts == READ
    assert [b.high for b in newer.bands] == [4096, None]
    assert newer.bands[1].write.counts == BAND_WRITE[1]
    # Its delta from a version 1 page of the same shape is an ordinary delta.
    assert native.delta(native.decode(version_page(1)), newer).delta.read.counts == [0] * 8


@pytest.mark.parametrize("raw_len, num_hists", [(4096, None), (8192, 9)])
def test_a_newer_version_without_a_valid_detail_part_has_no_bands(raw_len, num_hists):
    newer = native.decode(version_page(3, raw_len, num_hists))
    assert (newer.version, newer.bands) == (3, [])
    assert newer["total_read_ops"] == 1000 and newer.write.counts == WRITE


def test_band_ios_the_totals_cannot_place_are_counted_not_lost_silently():
    totals = devicecore.Totals()
    totals.add(native.delta(page(band_read=(), band_write=()),
                            page(read=grown(READ, 1), band_read=(), band_write=())).delta)
    with_bands = native.delta(page(), page(band_read=[grown(b, 1) for b in BAND_READ],
                                           band_write=[grown(b, 2) for b in BAND_WRITE]))
    totals.add(with_bands.delta)
    assert totals.band_ios_unplaced == 2 * 8 * (1 + 2)  # 2 bands x 8 bins x (1 read + 2 write)
    assert totals.band_ios_widened == 0 and not totals.page.bands


def test_a_band_wider_than_any_of_the_totals_is_counted_where_it_goes():
    totals = devicecore.Totals()
    narrow = (4096, 65536)
    totals.add(native.delta(page(sizes=narrow), page(sizes=narrow)).delta)
    wide = native.delta(page(), page(band_read=[grown(b, 1) for b in BAND_READ]))
    totals.add(wide.delta)
    assert totals.band_ios_widened == 8  # the open-ended band's 8 bins, one read each
    assert totals.band_ios_unplaced == 0
