"""Per-device state: kept peaks against a brute-force maximum, a bin layout change."""

import random

from nitrometer.agent.state import PeakWindow, peaks_of
from tests.agent.pages import NUM_BINS, ScriptedSource, device

DEV = {"device": "nvme1n1", "serial": "AWS1234567890ABCDEF", "kind": "instance_store"}


def test_kept_peaks_equal_the_window_maximum():
    rng = random.Random(7)
    window = PeakWindow(5.0)
    for t in range(200):
        if t == 120:
            window.window = 2.0  # a reload shortens the window; the next add trims it
        window.add(float(t), {("iops", "read"): rng.choice([rng.random(), 10 * rng.random()]),
                              ("iops", "write"): float(t % 7)})
        expected = peaks_of(e for e in window.entries if e[0] > t - window.window)
        assert window.peaks() == expected


def test_a_new_bin_layout_starts_the_totals_over_and_counts_one_reset(rig):
    def script(builder, i):
        if i == 3:  # same serial, fewer bins: e.g. a firmware update
            builder.bounds = builder.bounds[:NUM_BINS - 4]
            builder.read_counts = builder.read_counts[:NUM_BINS - 4]
            builder.write_counts = builder.write_counts[:NUM_BINS - 4]
        builder.advance(reads=1000, writes=100)

    r = rig([ScriptedSource(device(), None, script)])
    r.sampler.run(6)
    assert r.value("nitrometer_device_resets_total", **DEV) == 1
    read = dict(DEV, op="read")
    # Totals from the new layout's first page on: 4000 reads by then, 2000 more after.
    assert r.value("ec2_nvme_read_ops_total", **DEV) == 6000
    assert r.value("ec2_nvme_latency_seconds_count", **read) == 6000
    buckets = [line for line in r.text().splitlines()
               if line.startswith("ec2_nvme_latency_seconds_bucket") and 'op="read"' in line]
    assert len(buckets) == NUM_BINS - 4
