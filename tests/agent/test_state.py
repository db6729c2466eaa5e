"""Per-device state: kept peaks against a brute-force maximum, a bin layout change."""

import random

from devkit.pages import NUM_BINS, ScriptedSource, device
from nitrometer.agent.state import PeakWindow, peaks_of

DEV = {"device": "nvme1n1", "serial": "AWS1234567890ABCDEF", "kind": "instance_store"}


def test_kept_peaks_equal_the_window_maximum():
    rng = random.Random(7)
    window = PeakWindow(5.0)
    entries = []
    for t in range(400):
        if t == 120:
            window.window = 2.0  # a reload shortens the window; the next add trims it
        if t == 250:
            window.window = 9.0  # and a longer one fills up again from then on
        values = {("iops", "read"): rng.choice([rng.random(), 10 * rng.random()]),
                  ("iops", "write"): float(t % 7)}
        if t % 11 == 0:
            values[("latency_p99", "read")] = float("nan")  # no reads: no p99
        if t % 3 == 0:
            values[("throughput", "read")] = rng.random()  # a value not in every entry
        window.add(float(t), values)
        entries.append((float(t), {k: v for k, v in values.items() if v == v}))
        shown = window.peaks()
        if 250 <= t < 259:  # entries dropped under the short window stay dropped
            continue
        assert shown == peaks_of(e for e in entries if e[0] > t - window.window)


def test_a_new_bin_layout_is_a_new_baseline_and_no_total_goes_down(rig):
    def script(builder, i):
        if i == 3:  # same serial, fewer bins: e.g. a firmware update
            builder.bounds = builder.bounds[:NUM_BINS - 4]
            builder.read_counts = builder.read_counts[:NUM_BINS - 4]
            builder.write_counts = builder.write_counts[:NUM_BINS - 4]
        builder.advance(reads=1000, writes=100)

    r = rig([ScriptedSource(device(), None, script)])
    r.state.buckets = "device"  # the device's own bins, to see which layout is exported
    read = dict(DEV, op="read")
    seen = []
    for _ in range(6):
        r.sampler.run(1)
        seen.append((r.value("ec2_nvme_read_ops_total", **DEV),
                     r.value("ec2_nvme_latency_seconds_count", **read)))
    assert r.value("nitrometer_device_layout_changes_total", **DEV) == 1
    assert r.value("nitrometer_device_resets_total", **DEV) == 0
    # The first page counts from the device's zero (1000) once the second has grown from
    # it; the interval into the new layout (read 3) is lost; the two after it count.
    assert [ops for ops, _ in seen] == [None, 2000, 3000, 3000, 4000, 5000]
    assert [count for _, count in seen] == [None, 2000, 3000, 3000, 4000, 5000]
    # The exported buckets keep the first layout: the same series go on.
    buckets = [line for line in r.text().splitlines()
               if line.startswith("ec2_nvme_latency_seconds_bucket") and 'op="read"' in line]
    assert len(buckets) == NUM_BINS


def test_a_tick_replaces_the_published_counts_only_when_they_changed(rig):
    def script(builder, i):
        time = builder.counters.get("total_read_time", 0)
        builder.advance(reads=100)
        if i in (2, 5):  # the read time steps back alone: a glitch
            builder.counters["total_read_time"] = time - 1

    r = rig([ScriptedSource(device(), None, script)])
    tracker = next(iter(r.sampler.engine.trackers.values()))
    r.sampler.run(3)
    dev = next(iter(r.state.devices.values()))
    held = dev.glitches  # what a render took under the lock
    assert held == {"total_read_time": 1} and held is not tracker.glitches
    r.sampler.run(2)
    assert dev.glitches is held  # nothing new: not copied again
    r.sampler.run(1)
    assert dev.glitches == {"total_read_time": 2} and held == {"total_read_time": 1}
    assert r.value("nitrometer_device_glitches_total", field="total_read_time",
                   **DEV) == 2
