"""The cardinality rule: top K by ops over the last minute, `other`, frozen then stale."""

from __future__ import annotations

from nitrometer.sampling.workloads import OTHER, TopWorkloads


def test_top_k_and_other():
    top = TopWorkloads(2)
    top.add(1.0, {"a": (10, 0, 100, 0), "b": (5, 1, 50, 10), "c": (1, 0, 10, 0)})
    assert top.counters() == {"a": (10, 0, 100, 0), "b": (5, 1, 50, 10),
                              OTHER: (1, 0, 10, 0)}


def test_leaving_the_top_freezes_the_series_until_stale():
    top = TopWorkloads(1, window=60, stale_after=300)
    top.add(0.0, {"a": (10, 0, 0, 0)})
    assert top.counters() == {"a": (10, 0, 0, 0), OTHER: (0, 0, 0, 0)}
    top.add(1.0, {"b": (50, 0, 0, 0), "a": (3, 0, 0, 0)})  # b: 50 over the minute, a: 13
    assert top.counters() == {"a": (10, 0, 0, 0), "b": (50, 0, 0, 0), OTHER: (3, 0, 0, 0)}
    top.add(2.0, {"a": (2, 0, 0, 0)})
    assert top.counters()["a"] == (10, 0, 0, 0)  # frozen: never goes down, no longer grows
    assert top.counters()[OTHER] == (5, 0, 0, 0)
    top.add(301.5, {"b": (1, 0, 0, 0)})
    assert "a" not in top.counters()  # 5 minutes out of the top: gone
    assert top.counters()["b"] == (51, 0, 0, 0)


def test_back_in_the_top_before_stale_counts_on():
    top = TopWorkloads(1, window=10, stale_after=300)
    top.add(0.0, {"a": (10, 0, 0, 0)})
    top.add(1.0, {"b": (20, 0, 0, 0)})
    top.add(20.0, {"a": (5, 0, 0, 0)})  # b's ops left the window
    assert top.counters() == {"a": (15, 0, 0, 0), "b": (20, 0, 0, 0), OTHER: (0, 0, 0, 0)}


def test_at_most_k_frozen_series():
    top = TopWorkloads(2, window=1, stale_after=300)
    for t in range(20):
        top.add(float(t), {f"w{t}": (1, 0, 0, 0)})  # a new leader every second
    assert len(top.counters()) <= 2 * 2 + 1
