"""The measured-reduction estimator on fleets with a known Graviton gain (no Prometheus)."""

from __future__ import annotations

import numpy as np
import pytest

from nitrometer.errors import NitrometerError
from nitrometer.savings.measured import HostWork, estimate
from tests.savings.fleets import TRUE_REDUCTION_PCT, fleet

EQUAL = {"db": (0.5, 0.5)}
HALF = {"db": (0.6, 0.3)}


def _contains(interval, value) -> bool:
    return interval[0] <= value <= interval[1]


# One fleet each shows the figures; how often a 90 % interval holds the truth over many
# fleets is test_interval_covers_the_truth_about_as_often_as_stated's.
def test_equal_load_recovers_the_gain_within_its_interval():
    hosts = [h.host_work() for h in fleet(np.random.default_rng(2), EQUAL, 8)]
    result = estimate(hosts, min_hours=1)
    assert result["basis"] == "equal_load"
    assert _contains(result["interval_pct"], TRUE_REDUCTION_PCT)
    assert result["nih_reduction_pct"] == pytest.approx(TRUE_REDUCTION_PCT, abs=5)
    # at equal load the raw ratio measures the same thing
    assert _contains(result["raw"]["interval_pct"], TRUE_REDUCTION_PCT)


def test_half_load_fools_the_raw_ratio_but_not_the_equal_load_figure():
    hosts = [h.host_work() for h in fleet(np.random.default_rng(3), HALF, 8)]
    result = estimate(hosts, min_hours=1)
    assert _contains(result["interval_pct"], TRUE_REDUCTION_PCT)
    raw = result["raw"]
    # Graviton at half the load does (1/(1-1/3)) / 2 = 0.75 of the x86 work per NIH:
    # the raw ratio says Graviton needs a third *more* hours.
    assert raw["nih_reduction_pct"] == pytest.approx(-33.3, abs=8)
    assert not _contains(raw["interval_pct"], TRUE_REDUCTION_PCT)


def test_interval_covers_the_truth_about_as_often_as_stated():
    rng = np.random.default_rng(3)
    covered = 0
    runs = 200
    for _ in range(runs):
        hosts = [h.host_work() for h in fleet(rng, {"a": (0.5, 0.3), "b": (0.4, 0.4)}, 8)]
        result = estimate(hosts, min_hours=1)
        covered += _contains(result["interval_pct"], TRUE_REDUCTION_PCT)
    # 90 % stated; a normal interval from 8 hosts a side runs a little narrow
    assert 0.78 <= covered / runs <= 0.97


def test_groups_compare_like_for_like_and_weigh_by_x86_hours():
    def host(job, name, arch, nih, work):
        return HostWork((job, name), arch, (job,), hours=nih / 8, nih=nih, work=work)

    hosts = [host("db", "g1", "arm64", 8, 250), host("db", "x1", "x86_64", 8, 200),
             host("db", "x2", "x86_64", 8, 200),
             host("web", "g2", "arm64", 8, 100), host("web", "x3", "x86_64", 8, 90),
             host("batch", "x4", "x86_64", 80, 10_000)]
    result = estimate(hosts, min_hours=1)
    assert result["basis"] == "raw"  # no CPU counters anywhere
    rows = {r["labels"]["job"]: r for r in result["groups"]}
    assert rows["db"]["raw"]["nih_reduction_pct"] == pytest.approx(20.0)
    assert rows["web"]["raw"]["nih_reduction_pct"] == pytest.approx(10.0)
    assert not rows["batch"]["comparable"] and rows["batch"]["reason"] == "no graviton hosts"
    # db has twice web's x86 hours; batch's x86-only work never enters
    assert result["nih_reduction_pct"] == pytest.approx((2 * 20 + 10) / 3)
    assert result["x86"]["hosts"] == 3 and result["graviton"]["hosts"] == 2
    assert any("one host on a side" in note for note in result["notes"])
    assert any("no comparison group has CPU counters" in note for note in result["notes"])


def test_repeatable_and_refuses_too_little():
    hosts = [h.host_work() for h in fleet(np.random.default_rng(4), EQUAL, 3)]
    assert estimate(hosts)["interval_pct"] == estimate(hosts)["interval_pct"]
    with pytest.raises(NitrometerError, match=r'too little data.*job="db": graviton has 3 '
                                              r"hosts and 6.0 instance hours"):
        estimate(hosts, min_hosts=4)
    x86_only = [h for h in hosts if h.arch == "x86_64"]
    with pytest.raises(NitrometerError, match="no graviton hosts"):
        estimate(x86_only)


def test_hosts_without_cpu_counters_count_only_raw():
    hosts = [h.host_work() for h in fleet(np.random.default_rng(5), EQUAL, 3)]
    hosts[0].cpu_busy_seconds = hosts[0].cpu_seconds = 0.0
    result = estimate(hosts)
    assert result["basis"] == "equal_load"
    assert result["x86"]["hosts_with_cpu"] == 2 and result["x86"]["hosts"] == 3
    assert any("1 hosts have no usable CPU counters" in note for note in result["notes"])
    assert result["warnings"] == []


@pytest.mark.parametrize("busy_factor", [9.33, -1.0, float("nan")])
def test_a_host_with_an_impossible_busy_share_is_left_out_not_the_run(busy_factor):
    hosts = [h.host_work() for h in fleet(np.random.default_rng(5), EQUAL, 4)]
    good = estimate(hosts)
    bad = hosts[0]  # an x86 host
    bad.cpu_busy_seconds = bad.cpu_seconds * busy_factor
    result = estimate(hosts)
    assert result["basis"] == "equal_load"
    assert result["x86"]["hosts_with_cpu"] == 3 and result["x86"]["hosts"] == 4
    # the figure moves by one host less, not to -933 %
    assert result["nih_reduction_pct"] == pytest.approx(good["nih_reduction_pct"], abs=5)
    assert _contains(result["interval_pct"], TRUE_REDUCTION_PCT)
    assert len(result["warnings"]) == 1
    assert bad.key[1] in result["warnings"][0] and "CPU busy share" in result["warnings"][0]


def test_the_interval_is_the_normal_one_the_rules_compute():
    """Two hosts a side, by hand: rates r, relative variance (std/mean)^2/n per side."""
    def host(name, arch, work, nih):
        return HostWork(("db", name), arch, ("db",), hours=nih / 8, nih=nih, work=work)

    hosts = [host("g1", "arm64", 100, 8), host("g2", "arm64", 140, 8),
             host("x1", "x86_64", 90, 8), host("x2", "x86_64", 110, 8)]
    result = estimate(hosts, min_hours=1)
    ratio = (200 / 16) / (240 / 16)
    variance = (10 / 100) ** 2 / 2 + (20 / 120) ** 2 / 2
    stderr = 100 * ratio * variance ** 0.5
    assert result["nih_reduction_pct"] == pytest.approx(100 * (1 - ratio))
    assert result["interval_pct"] == pytest.approx(
        [100 * (1 - ratio) - 1.6448536 * stderr, 100 * (1 - ratio) + 1.6448536 * stderr])
