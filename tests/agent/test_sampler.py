import errno
import gc
import json
import math
import sys

from devkit.pages import ScriptedSource, device
from nitrometer.agent.events import EventSink

DEV = {"device": "nvme1n1", "serial": "AWS1234567890ABCDEF", "kind": "instance_store"}


def steady(builder, i):
    builder.advance(reads=1000, writes=200)


def test_counters_and_histograms_follow_the_device(rig):
    source = ScriptedSource(device(), None, steady)
    r = rig([source])
    r.sampler.run(5)
    assert r.value("ec2_nvme_read_ops_total", **DEV) == 5000
    assert r.value("ec2_nvme_write_bytes_total", **DEV) == 5 * 200 * 16384
    # Every read landed in bin 4 ([8, 16] us) and took 9 us.
    assert r.value("ec2_nvme_read_time_seconds_total", **DEV) == 5000 * 9e-6
    read = dict(DEV, op="read")
    assert r.value("ec2_nvme_latency_seconds_bucket", le="4e-06", **read) == 0
    assert r.value("ec2_nvme_latency_seconds_bucket", le="1.6e-05", **read) == 5000
    assert r.value("ec2_nvme_latency_seconds_count", **read) == 5000
    assert math.isclose(r.value("ec2_nvme_latency_seconds_sum", **read), 5000 * 9e-6)
    band = dict(read, io_size="4K")
    assert r.value("ec2_nvme_io_size_latency_seconds_count", **band) == 5000
    assert r.value("ec2_nvme_peak_iops", **read) == 1000
    assert r.value("nitrometer_device_up", **DEV) == 1


def test_reset_and_u32_wrap_never_decrease_a_counter(rig):
    def script(builder, i):
        if i == 0:
            # Bin 4 just under 2^32: the next interval wraps it.
            builder.read_counts[4] = (1 << 32) - 1500  # first page: 2^32 - 500
            builder.band_read[1][4] = (1 << 32) - 1500
        if i == 4:
            builder.reset()  # the device restarted its counters
        builder.advance(reads=1000, writes=100)

    source = ScriptedSource(device(), None, script)
    r = rig([source])
    names = ["ec2_nvme_read_ops_total", "ec2_nvme_write_bytes_total",
             "ec2_nvme_read_time_seconds_total"]
    read = dict(DEV, op="read")
    previous = {}
    r.sampler.run(1)
    # The first page counts once the second has grown from it: nothing to serve yet.
    assert r.value("ec2_nvme_read_ops_total", **DEV) is None
    for _ in range(7):
        r.sampler.run(1)
        now = {n: r.value(n, **DEV) for n in names}
        now["bucket"] = r.value("ec2_nvme_latency_seconds_bucket", le="+Inf", **read)
        now["count"] = r.value("ec2_nvme_latency_seconds_count", **read)
        now["sum"] = r.value("ec2_nvme_latency_seconds_sum", **read)
        for key, value in now.items():
            assert value >= previous.get(key, 0), key
        previous = now
    assert r.value("nitrometer_device_resets_total", **DEV) == 1
    # 8 polls of 1000 reads each; the wrap of the u32 bin costs nothing.
    assert r.value("ec2_nvme_read_ops_total", **DEV) == 8000
    # The first page counts in full, then 7 polls of 1000 across the wrap and the reset.
    assert previous["count"] == (1 << 32) - 500 + 7000


def test_a_failing_device_drops_out_and_comes_back(rig, caplog):
    failing = ScriptedSource(device("nvme2n1", "AWSFAILING0000000001"), None, steady,
                             fail=lambda i: errno.EIO if 3 <= i < 6 else None)
    healthy = ScriptedSource(device(), None, steady)
    r = rig([failing, healthy])
    bad = {"device": "nvme2n1", "serial": "AWSFAILING0000000001", "kind": "instance_store"}
    with caplog.at_level("INFO", logger="nitrometer.sampler"):
        r.sampler.run(4)
        assert r.value("nitrometer_device_up", **bad) == 0
        r.sampler.run(20)
    # The healthy device was read on every tick regardless.
    assert healthy.reads == 24
    assert r.value("ec2_nvme_read_ops_total", **DEV) == 24000
    assert r.value("nitrometer_device_errors_total", reason="eio", **bad) == 3
    assert r.value("nitrometer_device_up", **bad) == 1
    # Retried with backoff: fewer reads than ticks, but it caught up with the device.
    assert failing.reads < 24
    assert r.value("ec2_nvme_read_ops_total", **bad) == (failing.reads - 3) * 1000
    messages = [rec.getMessage() for rec in caplog.records]
    assert sum("failing" in m for m in messages) == 1
    assert sum("recovered" in m for m in messages) == 1


def test_exceeded_seconds_form_one_episode(rig, tmp_path):
    def script(builder, i):
        over = {("instance", "iops"): 400_000} if 2 <= i < 7 else None
        builder.advance(reads=5000 if over else 1000, read_bin=12 if over else 4,
                        exceeded=over)

    events = tmp_path / "events.jsonl"
    r = rig([ScriptedSource(device(), None, script)], events=EventSink(str(events)))
    r.sampler.run(5)
    scope = dict(DEV, scope="instance", limit="iops")
    assert r.value("ec2_nvme_performance_exceeded", **scope) == 1
    assert r.value("ec2_nvme_exceeded_episodes_total", **scope) == 0
    r.sampler.run(5)
    assert r.value("ec2_nvme_performance_exceeded", **scope) == 0
    assert r.value("ec2_nvme_exceeded_episodes_total", **scope) == 1
    assert math.isclose(r.value("ec2_nvme_performance_exceeded_seconds_total", **scope), 2.0)
    assert r.value("ec2_nvme_exceeded_intervals_total", **DEV) == 5
    lines = events.read_text().splitlines()
    assert len(lines) == 1
    episode = json.loads(lines[0])
    assert episode["scope"] == "instance" and episode["limit"] == "iops"
    assert episode["seconds_exceeded"] == 2.0 and episode["intervals"] == 5
    assert episode["peak_iops"] == 5000
    # Reads in bin 12 ([2048, 4096] us) during the episode.
    assert 2048e-6 <= episode["p99_latency_seconds"] <= 4096e-6
    assert episode["start"].endswith("Z") and episode["start"] < episode["end"]
    # Instance store has no volume limit: no volume-scope series.
    assert r.value("ec2_nvme_performance_exceeded", **dict(scope, scope="volume")) is None


def test_deadline_schedule_counts_overruns_without_drift(rig):
    source = ScriptedSource(device(), None, steady)
    r = rig([source])
    original = source.read

    def slow_read():
        if source.reads == 3:
            r.clock.sleep_until(r.clock.monotonic() + 3.5)  # a read that takes 3.5 intervals
        return original()

    source.read = slow_read
    start = r.clock.monotonic()
    r.sampler.run(10)
    assert r.value("nitrometer_poll_overruns_total") == 2
    # Ten ticks, two skipped: the schedule stays on its grid of whole intervals.
    assert math.isclose(r.clock.monotonic() - start, 11.0)


def test_the_sampling_thread_keeps_time_under_load(rig):
    from nitrometer.agent.sampler import SWITCH_INTERVAL

    r = rig([ScriptedSource(device(), None, steady)])
    interval = sys.getswitchinterval()
    try:
        r.sampler.stop_event.set()  # the thread starts and ends at once
        r.sampler.start().join(30)
        # A sampler waking at its deadline gets the interpreter back within half a
        # millisecond of asking, and what start-up built is out of the collector's way.
        assert sys.getswitchinterval() == SWITCH_INTERVAL <= 0.0005
        assert gc.get_freeze_count() > 0
    finally:
        sys.setswitchinterval(interval)
        gc.unfreeze()
