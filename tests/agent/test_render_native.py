"""The per-device lines the C core writes (native/render.c): its values as the Python client
writes them, and each device's lines byte for byte what the Python path writes."""

from __future__ import annotations

import math
import struct
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.utils import floatToGoString

from devkit.pages import ScriptedSource, device
from nitrometer import devicecore, logpage, native
from nitrometer import metrics as m
from nitrometer.agent.devicelines import Buckets, DeviceLines, DeviceRenderer
from nitrometer.agent.exporter import render, snapshot
from nitrometer.agent.exposition import (
    COARSE_BAND_EDGES_US,
    COARSE_LATENCY_EDGES_US,
    Family,
    fmt,
)
from nitrometer.native import ffi, lib
from nitrometer.render import LineBuffer, format_count, format_value

# Each device's parts, in family order: six counters, exceeded seconds, episodes, now,
# intervals, queue length, latency, bands, then the three peak families.
LATENCY_PART, BANDS_PART, PEAKS_PART = 11, 12, 13

MIDPOINTS_US = [(lo + up) / 2 for lo, up in logpage.power_of_two_bounds(28)]


@settings(max_examples=3000, deadline=None)
@given(st.one_of(
    st.floats(),
    st.floats(min_value=1e5, max_value=1e17),  # around Go's and repr's switches to exponents
    st.integers(min_value=0, max_value=10 ** 13).map(lambda us: us * 1e-6),
    st.lists(st.tuples(st.integers(0, 27), st.integers(0, 1 << 30)), max_size=28).map(
        lambda bins: sum(MIDPOINTS_US[b] * n for b, n in bins) * 1e-6),
    st.integers(min_value=0, max_value=(1 << 64) - 1).map(
        lambda bits: struct.unpack("<d", struct.pack("<Q", bits))[0]),  # any bit pattern
))
def test_the_c_writes_floats_as_the_python_client(value):
    assert format_value(value) == floatToGoString(value)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.integers(min_value=0, max_value=1 << 22),
                 st.integers(min_value=0, max_value=(1 << 53) + 4),
                 st.integers(min_value=0, max_value=(1 << 64) - 1)))
def test_the_c_writes_counts_as_the_python_client(value):
    assert format_count(value) == floatToGoString(value) == fmt(value)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.integers(min_value=0, max_value=10 ** 7),
                 st.integers(min_value=0, max_value=10 ** 15 + 10),
                 st.integers(min_value=0, max_value=(1 << 64) - 1),
                 st.integers(min_value=1, max_value=10 ** 9).map(lambda n: n * 1000)),
       st.sampled_from([1e-6, 1e-3, 1.0]))
def test_the_c_writes_scaled_counts_as_the_python_client(count, scale):
    # Microseconds in seconds take a shortcut from the count's own digits; the rest, and
    # whole numbers through nm_format_value, must come out the same as the slow path's.
    out = ffi.new("char[32]")
    written = ffi.unpack(out, lib.nm_format_scaled(count, scale, out)).decode()
    assert written == floatToGoString(count * scale) == format_value(count * scale)
    assert format_value(float(count)) == floatToGoString(float(count))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(min_value=0, max_value=2 * 10 ** 15).map(lambda h: h / 2),
                          st.floats(min_value=0, max_value=1e18)), min_size=10, max_size=10))
def test_band_sums_whole_half_or_any_are_written_as_the_python_path(sums_us):
    # A band's _sum is the sum of its bins' midpoints (whole or half microseconds): the C
    # core writes those from their digits, anything else the slow way.
    totals = banded()
    for i, us in enumerate(sums_us):
        totals._t.band_sum_us[i] = us
    _latency, bands = both_ways(lines_of(totals, coarse=True), totals)
    sums = [line.rsplit(b" ", 1)[1] for line in bands.splitlines() if b"_sum{" in line]
    assert sums == [floatToGoString(us * 1e-6).encode() for us in sums_us]
    out = ffi.new("char[32]")
    assert [ffi.unpack(out, lib.nm_format_scaled_us(us, 1e-6, out)) for us in sums_us] == sums


def test_values_at_the_edges():
    edges = [0.0, -0.0, 1e-4, 1e-5, 999999.9, 1e6, 1e15, 1e16, 1.5e16, 2.0 ** 53, 2.0 ** 60,
             5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, math.nan, math.inf,
             -math.inf, -1234567.5]
    # Powers of two (a lower neighbour nearer than the upper) and the doubles either side.
    powers = [2.0 ** e for e in range(-1074, 1024)]
    edges += powers + [math.nextafter(p, 0) for p in powers] + \
        [math.nextafter(p, math.inf) for p in powers]
    assert [format_value(v) for v in edges] == [floatToGoString(v) for v in edges]
    counts = [0, 999_999, 1_000_000, 1_234_567, 10 ** 15, (1 << 53) - 1, 1 << 53,
              (1 << 53) + 1, (1 << 64) - 1]
    assert [format_count(v) for v in counts] == [floatToGoString(v) for v in counts]


def device_totals(read_counts, write_counts, band_sizes=(), band_read=(), band_write=(),
                  counters=None) -> devicecore.Totals:
    """Running totals from one page (the device's first: counted from zero); the latency bins
    then take the given counts, which may be past the page's 32 bits."""
    bins = logpage.power_of_two_bounds(max(len(read_counts), 1))
    read = [(lo, up, 0) for lo, up in bins[:len(read_counts)]]
    write = [(lo, up, 0) for lo, up in bins[:len(write_counts)]]
    kind = "instance_store" if band_sizes else "ebs"
    page = logpage.encode_page(kind, counters or {"total_read_time": 123_456_789,
                                                  "total_write_time": 98_765},
                               read, write, band_sizes=band_sizes, band_read=band_read,
                               band_write=band_write)
    totals = devicecore.Totals()
    totals.add(native.decode(page))
    for hist, counts in ((totals._t.page.read, read_counts), (totals._t.page.write, write_counts)):
        for i, count in enumerate(counts):
            hist.count[i] = count
    return totals


def view(totals: devicecore.Totals, band_labels=(), kind="instance_store", **state):
    dev = SimpleNamespace(name="nvme1n1", serial='AWS{"1"}', kind=kind)
    fields = dict(device=dev, scopes=logpage.exceeded_limits(kind), totals=totals,
                  band_labels=band_labels or tuple(b.label for b in totals.page.bands),
                  episodes={}, exceeded_now={}, exceeded_intervals=0, peaks={})
    return SimpleNamespace(**{**fields, **state})


def lines_of(totals, *, coarse: bool, io_size: bool = True, band_labels=(),
             d=None) -> DeviceLines:
    snap = SimpleNamespace(latency_edges=COARSE_LATENCY_EDGES_US if coarse else None,
                           band_edges=COARSE_BAND_EDGES_US if coarse else None,
                           io_size=io_size)
    return DeviceRenderer().lines_of(d or view(totals, band_labels), snap, {})


def every_part(lines: DeviceLines, d, out=None) -> list[bytes]:
    """The C core's parts of a device, checked against the Python path's."""
    assert lines.plannable
    written = lines.parts(d, out or LineBuffer())
    assert written == lines.parts(d, None)
    assert len(written) == PEAKS_PART + 3
    return written


def both_ways(lines: DeviceLines, totals, out=None) -> list[bytes]:
    """The C core's histogram parts (latency, bands), checked against the Python path's."""
    d = view(totals, lines.band_labels)
    return every_part(lines, d, out)[LATENCY_PART:PEAKS_PART]


def device_plan(lines: DeviceLines, totals):
    """The arguments of nm_render_device for a device with no peaks, before out."""
    plan = lines.plan_of(())[0]
    values = ffi.new("double[]", [0.0] * 16)
    return (totals._t, plan._text, len(plan._text), plan._plan, len(plan._plan), values,
            len(lines.scopes) * 2 + 1, 1e-6)


BANDS = (512, 4096, 65536, 1 << 20, logpage.NO_SIZE_BOUND)


def banded(scale: int = 1) -> devicecore.Totals:
    reads = [[(b * 7 + i) % 5 * scale for i in range(32)] for b in range(len(BANDS))]
    writes = [[(b + i) % 3 * scale for i in range(32)] for b in range(len(BANDS))]
    read = [sum(col) for col in zip(*reads)]
    write = [sum(col) for col in zip(*writes)]
    return device_totals(read, write, BANDS, reads, writes)


@pytest.mark.parametrize("coarse", [False, True])
def test_latency_and_bands(coarse):
    totals = banded()
    latency, bands = both_ways(lines_of(totals, coarse=coarse), totals)
    text = latency.decode()
    assert text.count("_bucket{") == 2 * (11 if coarse else 32)
    assert 'le="+Inf",op="write",serial="AWS{\\"1\\"}"} ' in text
    assert bands.decode().count("_count{") == 2 * len(BANDS)
    assert 'io_size="1M"' in bands.decode() and 'io_size="max"' in bands.decode()


def test_fine_buckets_are_what_the_generic_histogram_writes():
    # An independent writer: the exposition's own histogram (the poll duration's).
    totals = device_totals([5, 0, 3, 1_000_000, 0, 7], [0] * 6)
    latency, _bands = both_ways(lines_of(totals, coarse=False), totals)
    lines = lines_of(totals, coarse=False)
    fam = Family(m.LATENCY, "histogram", "")
    for op, hist, time_us in (("read", totals.page.read, 123_456_789),
                              ("write", totals.page.write, 98_765)):
        fam.histogram(m.DEVICE_LABELS + ("op",),
                      lines.values + (op,), lines.buckets[0].les, hist.counts, time_us * 1e-6)
    assert latency.decode() == "".join(fam.lines)


def test_large_counts():
    # Cumulative counts past 10^6 and past 2^53 (written as the float they round to).
    totals = device_totals([999_999, 1, (1 << 53) - 1_000_001, 1, 1], [1 << 60] * 5)
    latency, _ = both_ways(lines_of(totals, coarse=False), totals)
    assert b" 1e+06\n" in latency and b" 9.007199254740992e+15\n" in latency
    assert b" 2.305843009213694e+18\n" in latency
    latency, _ = both_ways(lines_of(totals, coarse=True), totals)


def test_counts_past_64_bits_are_written_in_python():
    top = (1 << 64) - 1
    totals = device_totals([top, top, 3], [1])
    lines = lines_of(totals, coarse=False)
    assert lib.nm_render_device(*device_plan(lines, totals), ffi.NULL, 0, ffi.NULL,
                                0) == lib.NM_ERENDER_RANGE
    latency = lines.parts(view(totals), LineBuffer())[LATENCY_PART]
    assert b" 3.6893488147419103e+19\n" in latency  # 2^65 + 1 as a float, as Python writes it


def test_a_histogram_of_no_bins():
    totals = device_totals([], [])
    assert totals.page.read.num_bins == 0
    latency, bands = both_ways(lines_of(totals, coarse=False), totals)
    labels = 'device="nvme1n1",kind="instance_store",op="read",serial="AWS{\\"1\\"}"'
    with_le = labels.replace("op=", 'le="+Inf",op=')
    assert latency.decode().splitlines()[:3] == [
        f"{m.LATENCY}_bucket{{{with_le}}} 0.0",
        f"{m.LATENCY}_count{{{labels}}} 0.0",
        f"{m.LATENCY}_sum{{{labels}}} 123.456789"]
    assert bands == b""


def test_a_buffer_too_short_is_told_the_size_and_written_past_nothing():
    totals = banded(scale=12345)
    lines = lines_of(totals, coarse=True)
    args = device_plan(lines, totals)
    need = lib.nm_render_device(*args, ffi.NULL, 0, ffi.NULL, 0)
    out = ffi.new("char[]", need + 8)
    ffi.memmove(out, b"\xaa" * (need + 8), need + 8)
    short = need // 2
    assert lib.nm_render_device(*args, out, short, ffi.NULL, 0) == need
    assert ffi.unpack(out + short, 8) == b"\xaa" * 8  # nothing past the room given
    assert lib.nm_render_device(*args, out, need, ffi.NULL, 0) == need
    assert ffi.unpack(out + need, 8) == b"\xaa" * 8
    # Through the wrapper: a small buffer grows to what the device needs.
    assert b"".join(every_part(lines, view(totals), LineBuffer(size=64))) == \
        ffi.unpack(out, need)


def test_a_plan_naming_a_band_the_totals_lack_is_refused():
    lines = lines_of(banded(), coarse=True)
    fewer = device_totals([1] * 32, [2] * 32, BANDS[:2], [[1] * 32] * 2, [[2] * 32] * 2)
    assert lib.nm_render_device(*device_plan(lines, fewer), ffi.NULL, 0, ffi.NULL,
                                0) == lib.NM_ELAYOUT


def test_band_labels_fewer_than_bands_and_bands_off():
    totals = banded()
    latency, bands = both_ways(lines_of(totals, coarse=True, band_labels=("512", "4K")),
                               totals)
    assert bands.decode().count("_count{") == 4
    lines = lines_of(totals, coarse=True, io_size=False)
    assert both_ways(lines, totals) == [latency, b""]


def test_bins_out_of_order_keep_the_python_path():
    # The decoder refuses such a page, so the totals are written by hand: coarse buckets
    # cannot be read off the running sum, and the C merge is used instead.
    totals = devicecore.Totals()
    page = totals._t.page
    page.kind = lib.NM_KIND_EBS
    uppers, counts = [8, 2, 64, 1 << 40], [3, 4, 5, 6]
    for hist in (page.read, page.write):
        hist.num_bins = len(uppers)
        for i, (up, c) in enumerate(zip(uppers, counts)):
            hist.lower[i], hist.upper[i], hist.count[i] = up // 2, up, c
    lines = lines_of(totals, coarse=True)
    assert not lines.plannable
    assert not Buckets(tuple(uppers), COARSE_LATENCY_EDGES_US).in_order
    latency = lines.parts(view(totals), LineBuffer())[LATENCY_PART]
    merged = native.merge_bins(totals.page.read, COARSE_LATENCY_EDGES_US)
    fam = Family(m.LATENCY, "histogram", "")
    fam.histogram(m.DEVICE_LABELS + ("op",), lines.values + ("read",),
                  lines.buckets[0].les, merged, 0.0)
    assert latency.decode().startswith("".join(fam.lines))


def moving(builder, i):
    builder.advance(reads=800 + 13 * i, writes=300 + i, read_bin=5 + i % 3, write_bin=9,
                    read_size=4096, write_size=65536, band=i % 5, queue=i % 4)


def exceeding(builder, i):
    """Pages moving, over the instance's IOPS limit (and the volume's) on some ticks."""
    over = 900_000 if i % 3 else 0
    builder.advance(reads=800 + 13 * i, writes=300 + i, read_bin=5 + i % 3, write_bin=9,
                    read_size=4096, write_size=65536, band=i % 5, queue=i % 4,
                    exceeded={("instance", "iops"): over, ("volume", "throughput"): over // 3})


def test_whole_bodies_written_in_c_and_in_python_are_the_same(rig):
    r = rig([ScriptedSource(device(f"nvme{i}n1", f"AWS{i:017d}"), None, exceeding)
             for i in range(1, 4)] + [ScriptedSource(device("nvme9n1", "vol-09", "ebs"),
                                                     None, exceeding)])
    in_c, in_python = DeviceRenderer(), DeviceRenderer(in_c=False)
    seen = b""
    for tick in range(8):
        r.sampler.run(1)
        r.state.buckets = "device" if tick % 2 else "coarse"
        r.state.io_size = tick != 4
        r.state.peaks_enabled = tick not in (5, 6)
        with r.state.lock:
            snap = snapshot(r.state)
        for openmetrics in (False, True):
            body = render(snap, devices=in_c, openmetrics=openmetrics)
            assert body == render(snap, devices=in_python, openmetrics=openmetrics)
            seen += body
    assert all(lines.plans for lines in in_c._lines.values())
    for name in (m.EXCEEDED_NOW, m.EXCEEDED_EPISODES, m.PEAK_IOPS, m.PEAK_LATENCY_P99):
        assert f"\n{name}{{".encode() in seen
    assert any(line.startswith(m.EXCEEDED_NOW + "{") and line.endswith(" 1.0")
               for line in seen.decode().splitlines())


TOP = (1 << 64) - 1
HUGE_COUNTERS = {name: (1 << 53) + 1 + i for i, name in enumerate(logpage.COUNTERS)}
HUGE_COUNTERS.update(total_read_time=TOP, ec2_instance_performance_exceeded_tp=TOP,
                     volume_queue_length=TOP)
PEAKS_SEEN = {("iops", "read"): 1234567.5, ("throughput", "write"): 0.0,
              ("latency_p99", "read"): math.nan, ("latency_p99", "write"): 2.5e-4,
              ("iops", "write"): 3.0, ("throughput", "read"): 1e20}


@pytest.mark.parametrize("kind", ["ebs", "instance_store"])
@pytest.mark.parametrize("scoped", [True, False])
@pytest.mark.parametrize("peaks", [PEAKS_SEEN, {("iops", "read"): math.nan}, {}])
@pytest.mark.parametrize("io_size", [True, False])
@pytest.mark.parametrize("counters", [None, HUGE_COUNTERS])
def test_every_part_of_a_device(kind, scoped, peaks, io_size, counters):
    totals = banded() if kind == "instance_store" else device_totals([3, 0, 5], [1, 2])
    for name, value in (counters or {}).items():
        totals._t.page.counters[logpage.COUNTERS.index(name)] = value
    scopes = logpage.exceeded_limits(kind) if scoped else ()
    d = view(totals, kind=kind, scopes=scopes, peaks=peaks, exceeded_intervals=(1 << 60) + 7,
             episodes={key: i + 1 for i, key in enumerate(scopes[1:])},
             exceeded_now={key: True for key in scopes[:1]})
    lines = lines_of(totals, coarse=True, io_size=io_size, d=d)
    parts = every_part(lines, d)
    assert [part.count(b"\n") for part in parts[6:10]] == [len(scopes)] * 3 + [1]
    assert (parts[BANDS_PART] != b"") == (io_size and kind == "instance_store")
    assert sum(part.count(b"\n") for part in parts[PEAKS_PART:]) == len(peaks)
    text = b"".join(parts).decode()
    if scoped:
        assert f'{m.EXCEEDED_NOW}{{device="nvme1n1",kind="{kind}",limit="iops",' in text
        assert text.count(" 1.0\n") >= 1 and f"{m.EXCEEDED_EPISODES}{{" in text
    if counters:
        assert parts[0].endswith(b" 9.007199254740992e+15\n")  # 2^53 + 1, as its float
        assert parts[4].endswith(b" 1.844674407370955e+13\n")  # 2^64 - 1 us in seconds
        assert parts[10].endswith(b" 1.8446744073709552e+19\n")  # the queue, a count
    assert parts[9].endswith(b" 1.152921504606847e+18\n")
    if ("latency_p99", "read") in peaks:
        read_p99 = parts[PEAKS_PART + 2].split(b"\n")[0]
        assert b'op="read"' in read_p99 and read_p99.endswith(b"} NaN")
    if len(peaks) > 1:
        write_iops = parts[PEAKS_PART].split(b"\n")[1]
        assert b'op="write"' in write_iops and write_iops.endswith(b"} 3.0")
        assert parts[PEAKS_PART + 1].startswith(f'{m.PEAK_THROUGHPUT}{{device="nvme1n1"'.encode())
        assert b" 1e+20\n" in parts[PEAKS_PART + 1] and b" 1.2345675e+06\n" in parts[PEAKS_PART]


def test_one_plan_per_set_of_peaks_in_any_order():
    totals = banded()
    d = view(totals, peaks=dict(PEAKS_SEEN))
    lines = lines_of(totals, coarse=True, d=d)
    first = every_part(lines, d)
    d.peaks = dict(reversed(list(PEAKS_SEEN.items())))  # the same peaks, found in another order
    assert every_part(lines, d) == first
    d.peaks = {}
    assert every_part(lines, d)[PEAKS_PART:] == [b"", b"", b""]
    assert len({id(plan) for plan, _order in lines.plans.values()}) == 2  # with, without


def test_a_plan_is_held_to_its_length_values_and_parts():
    totals = banded()
    lines = lines_of(totals, coarse=True)
    args = list(device_plan(lines, totals))
    need = lib.nm_render_device(*args, ffi.NULL, 0, ffi.NULL, 0)
    assert need > 0
    ends = ffi.new("uint64_t[]", PEAKS_PART + 3)
    assert lib.nm_render_device(*args, ffi.NULL, 0, ends, PEAKS_PART + 3) == need
    assert ends[PEAKS_PART + 2] == need
    assert ends[0] < ends[1] < ends[LATENCY_PART] < ends[BANDS_PART]
    assert lib.nm_render_device(*args, ffi.NULL, 0, ends, PEAKS_PART + 2) == lib.NM_EARG
    written = set()
    for cut in range(args[4]):  # a plan cut short anywhere: what it holds whole, or refused
        short = args[:4] + [cut] + args[5:]
        written.add(lib.nm_render_device(*short, ffi.NULL, 0, ffi.NULL, 0))
    assert lib.NM_EARG in written and all(n == lib.NM_EARG or 0 <= n <= need for n in written)
    # Six counters, then three parts of two scopes and two of one line: the latency's head.
    histogram = 6 * 5 + 3 * 9 + 2 * 5
    assert ffi.unpack(args[3], args[4])[histogram] == lib.NM_RENDER_HISTOGRAM
    mid_histogram = args[:4] + [histogram + 5] + args[5:]
    assert lib.nm_render_device(*mid_histogram, ffi.NULL, 0, ffi.NULL, 0) == lib.NM_EARG
    fewer_values = args[:6] + [args[6] - 1] + args[7:]  # the intervals' value missing
    assert lib.nm_render_device(*fewer_values, ffi.NULL, 0, ffi.NULL, 0) == lib.NM_EARG
    bad = ffi.new("uint32_t[]", [lib.NM_RENDER_COUNT, lib.NM_NUM_COUNTERS, 0, 1])
    assert lib.nm_render_device(*args[:3], bad, 4, *args[5:], ffi.NULL, 0, ffi.NULL,
                                0) == lib.NM_EARG
    unknown = ffi.new("uint32_t[]", [99, 0, 0, 1])
    assert lib.nm_render_device(*args[:3], unknown, 4, *args[5:], ffi.NULL, 0, ffi.NULL,
                                0) == lib.NM_EARG


def test_identity_lines_are_written_again_only_when_they_change(rig):
    r = rig([ScriptedSource(device("nvme1n1", "AWS00000000000000001"), None, moving)])
    renderer = DeviceRenderer()
    r.sampler.run(2)
    with r.state.lock:
        snap = snapshot(r.state)
    first = renderer.families(snap)[-8:]
    r.sampler.run(1)
    with r.state.lock:
        snap = snapshot(r.state)
    assert all(a is b for a, b in zip(renderer.families(snap)[-8:], first))
    snap.devices[0].up = False
    again = renderer.families(snap)[-8:]
    assert again[3] is not first[3] and again[3].lines[0].endswith(" 0.0\n")
    assert render(snap, devices=renderer) == render(snap, devices=DeviceRenderer(in_c=False))
