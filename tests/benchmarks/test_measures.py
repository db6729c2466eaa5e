"""What the benchmarks measure with: growing fake devices, reading an exposition."""

from __future__ import annotations

from benchmarks.fleet import READS_PER_SECOND, growing_pages, samples_of, series
from nitrometer import native


def test_fake_devices_grow_by_one_second_of_load_per_page_without_a_glitch():
    pages = growing_pages(3, 40)
    guard = native.Guard(1e7, 2e10)
    reads = []
    for second, raw in enumerate(pages):
        page, summary = guard.sample(raw, float(second))
        assert summary.baseline == (second == 0)
        assert not (summary.held or summary.reset or summary.glitches or summary.dropped)
        reads.append(page.to_dict()["total_read_ops"])
        if second:
            assert summary.delta.to_dict()["total_read_ops"] == READS_PER_SECOND
            bands = summary.band_read_ops
            assert len(bands) == 5 and all(ops > 0 for ops in bands)
    assert reads[-1] - reads[0] == 39 * READS_PER_SECOND
    # Devices differ in age, so no two show the same counters.
    assert growing_pages(4, 1)[0] != pages[0]


def test_an_exposition_is_read_as_prometheus_would():
    text = (
        "# HELP ec2_nvme_read_ops Read operations.\n"
        "# TYPE ec2_nvme_read_ops counter\n"
        'ec2_nvme_read_ops_total{device="nvme1n1",model="a } b \\" c"} 12.0\n'
        'ec2_nvme_read_ops_total{device="nvme2n1"} 3 # {trace_id="1"} 1\n'
        "ec2_nvme_read_ops_created 1.7e9\n"
        "nitrometer_poll_duration_seconds_count 5 1700000000\n"
        "# EOF\n"
    )
    assert series(text, "ec2_nvme_read_ops_total") == {
        '{device="nvme1n1",model="a } b \\" c"}': 12.0, '{device="nvme2n1"}': 3.0}
    assert series(text, "nitrometer_poll_duration_seconds_count") == {"": 5.0}
    assert series(text, "ec2_nvme_read_ops") == {}
    assert samples_of(text) == 4
