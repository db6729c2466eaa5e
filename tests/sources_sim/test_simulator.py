"""The simulator's scenarios show their signatures in the decoded pages."""

from __future__ import annotations

import pytest

from nitrometer import native
from nitrometer.collectors.base import FastClock, SourceSpec
from nitrometer.errors import ConfigError
from nitrometer.sim.devices import simulated_sources

SECONDS = 40


def run(target="i3en.xlarge", scenario="steady", ebs=(), seconds=SECONDS, seed=0, step=None):
    """Decoded (first, last) page of every device over `seconds` of simulated time."""
    clock = FastClock(0)
    sources = simulated_sources(SourceSpec("simulate", target, scenario, tuple(ebs)), clock,
                                seed=seed)
    first = [native.decode(s.read()[0]) for s in sources]
    start = clock.monotonic()
    for t in range(step or seconds, seconds + 1, step or seconds):
        clock.sleep_until(start + t)
        raws = [s.read()[0] for s in sources]
    return sources, first, [native.decode(r) for r in raws], raws


def delta(first, last):
    summary = native.delta(first, last)
    assert not summary.reset and summary.glitches == ()
    return summary.delta


def share_above(hist, us):
    counts = hist.counts
    return sum(c for c, lo in zip(counts, hist.lower) if lo >= us) / sum(counts)


def test_devices_are_named_and_identified_like_aws():
    sources, first, _, raws = run("i3en.2xlarge", ebs=("gp3", "io2"), seconds=1)
    names = [s.device.name for s in sources]
    assert names == ["nvme1n1", "nvme2n1", "nvme3n1", "nvme4n1"]
    kinds = [s.device.kind for s in sources]
    assert kinds == ["instance_store", "instance_store", "ebs", "ebs"]
    assert all(s.device.serial.startswith("AWS") for s in sources[:2])
    assert [s.device.serial[:5] for s in sources[2:]] == ["vol-0", "vol-0"]
    assert [s.device.bdev for s in sources[2:]] == ["sdf", "sdg"]
    assert sources[2].device.model == "Amazon Elastic Block Store"
    assert len({s.device.serial for s in sources}) == 4
    assert [len(r) for r in raws] == [8192, 8192, 4096, 4096]
    page = first[0]
    assert page.version == 1 and [b.label for b in page.bands] == ["512", "4K", "8K", "32K",
                                                                   "max"]
    assert page.read.lower[:4] == [0, 1, 2, 4] and page.read.upper[-1] == 2 ** 64 - 1


def test_same_seed_same_pages_whatever_the_read_cadence():
    *_, every_second = run(scenario="mixed", ebs=("gp3",), seed=5, step=1)
    *_, once = run(scenario="mixed", ebs=("gp3",), seed=5)
    *_, other_seed = run(scenario="mixed", ebs=("gp3",), seed=6)
    assert every_second == once
    assert once != other_seed


def test_steady_stays_under_every_limit():
    _, first, last, _ = run(ebs=("gp3",))
    for a, b in zip(first, last):
        d = delta(a, b)
        for name in ("ebs_volume_performance_exceeded_iops",
                     "ec2_instance_performance_exceeded_iops",
                     "ec2_instance_performance_exceeded_tp"):
            assert d[name] < 0.02 * SECONDS * 1e6, name
        assert d["total_read_ops"] > 0 and d["total_write_ops"] > 0


def test_over_limit_writes_queue_in_the_millisecond_bins_reads_stay_fast():
    _, first, last, _ = run(scenario="over-limit")
    d = delta(first[0], last[0])
    exceeded_s = d["ec2_instance_performance_exceeded_iops"] / 1e6
    assert 30 <= exceeded_s <= 38  # the guide: ~34 s of 40
    write_bins = dict(zip(d.write.upper, d.write.counts))
    assert write_bins[2048] / d.write.total > 0.9  # the [1024, 2048] us bin
    assert d.read.quantiles((0.99,))[0] < 50
    assert share_above(d.read, 64) < 0.001
    assert d["ec2_instance_performance_exceeded_tp"] < 1e6
    assert last[0]["volume_queue_length"] > 5 * first[0]["volume_queue_length"]
    # i3en.xlarge completes at most its documented 65,000 write IOPS
    assert d["total_write_ops"] <= 65000 * SECONDS * 1.02


def test_large_writes_slow_small_reads_into_8_to_16_ms():
    _, first, last, _ = run(scenario="large-write-interference")
    d = delta(first[0], last[0])
    bands = {b.label: b for b in d.bands}
    for label in ("512", "4K"):
        reads = bands[label].read
        in_bin = dict(zip(reads.upper, reads.counts))[16384]
        assert in_bin / reads.total > 0.8, label
    big_writes = bands["max"].write
    assert big_writes.total == d.write.total > 0
    assert big_writes.quantiles((0.5,))[0] > 4000
    assert d["ec2_instance_performance_exceeded_tp"] > 0.6 * SECONDS * 1e6
    assert d["ec2_instance_performance_exceeded_iops"] < 0.05 * SECONDS * 1e6


def test_mixed_changes_over_time_and_touches_limits():
    clock = FastClock(0)
    sources = simulated_sources(SourceSpec("simulate", "i4i.xlarge", "mixed"), clock, seed=2)
    start = clock.monotonic()
    pages = []
    for t in range(0, 601, 30):
        clock.sleep_until(start + t)
        pages.append(native.decode(sources[0].read()[0]))
    deltas = [delta(a, b) for a, b in zip(pages, pages[1:])]
    ops = [d["total_read_ops"] for d in deltas]
    assert max(ops) > 1.5 * min(ops)
    exceeded = [d["ec2_instance_performance_exceeded_iops"]
                + d["ec2_instance_performance_exceeded_tp"] for d in deltas]
    assert sum(e > 1e6 for e in exceeded) >= 2
    assert sum(e < 1e5 for e in exceeded) >= 2


def test_ebs_volume_over_its_limit_advances_the_volume_counter():
    _, first, last, _ = run(target="i3.xlarge", scenario="mixed", ebs=("gp3",), seconds=600)
    d = delta(first[1], last[1])
    assert d.version == 0 and d.kind == "ebs"
    assert d["ebs_volume_performance_exceeded_iops"] > 1e6


def test_counters_wrap_like_a_device():
    _, first, _, _ = run(target="i3en.6xlarge", seconds=1)
    # three days of history: u64 totals are past 2^32, u32 bins have wrapped (lost whole
    # multiples of 2^32) while the u64 band counts kept every IO
    page = first[0]
    ops = page["total_read_ops"]
    assert ops > 2 ** 32
    assert sum(page.read.counts) < ops and (ops - sum(page.read.counts)) % 2 ** 32 == 0
    assert sum(band.read.total for band in page.bands) == ops


@pytest.mark.parametrize("spec", [SourceSpec("simulate", "m5.large"),
                                  SourceSpec("simulate", "i3en.xlarge", "nope"),
                                  SourceSpec("simulate", "i3en.xlarge", "steady", ("st1",))])
def test_unknown_names_are_config_errors(spec):
    with pytest.raises(ConfigError):
        simulated_sources(spec, FastClock(0))


def test_a_mistyped_simulated_type_names_the_closest_ones_in_one_short_line():
    with pytest.raises(ConfigError) as typo:
        simulated_sources(SourceSpec("simulate", "i3en.xlage"), FastClock(0))
    assert "closest: i3en.xlarge" in str(typo.value) and len(str(typo.value)) < 200
    with pytest.raises(ConfigError) as other:
        simulated_sources(SourceSpec("simulate", "zz9.huge"), FastClock(0))
    assert "families with instance storage: c6gd, i3, i3en" in str(other.value)
