"""The engine's record builds most of its fields when first asked, from its own copy of what
the C core produced: each must equal the field built at once from the step's summary, and
stay the same after the device's next step reuses the C buffers."""

from __future__ import annotations

import math
import random

import pytest

from devkit.pages import SCOPE_COUNTERS, PageBuilder, device
from nitrometer import native
from nitrometer.logpage import EXCEEDED_COUNTERS, exceeded_limits
from nitrometer.sampling import BandStats, Limits, OpStats
from nitrometer.sampling.device import DeviceTracker
from nitrometer.sampling.interval import OPS, exceeded_of, headroom_of

LIMITS = Limits("gp3", volume_iops=3000, volume_throughput=125e6,
                instance={"read": {"iops": 20000}, "total": {"iops": 40000,
                                                             "throughput": 1.25e9}})
LAZY = ("ops", "bands", "delta", "reset", "glitches", "confirmed", "dropped", "exceeded",
        "exceeded_us", "headroom", "queue_length")


def named(qs, values) -> dict:
    return {q: None if math.isnan(v) else v for q, v in zip(qs, values)}


def eager(summary: native.Summary, page: native.Page, kind: str, seconds: float,
          share: float, limits) -> dict:
    """Every field of the record built at once from the step's summary (a view of the C
    buffers, read before the next step), the way the record was made before it was lazy."""
    delta = summary.delta
    counters, qs, glitches = delta.counters, summary.qs, summary.glitches
    ops = {}
    for name, q in zip(OPS, (summary.read_q, summary.write_q)):
        time_field = f"total_{name}_time"
        ops[name] = OpStats(counters[f"total_{name}_ops"], counters[f"total_{name}_bytes"],
                            None if time_field in glitches else counters[time_field],
                            seconds, named(qs, q))
    bands = tuple(BandStats(low, high, reads, writes, named(qs, rq), named(qs, wq), seconds)
                  for (low, high), reads, writes, rq, wq in zip(
                      delta.band_bounds(), summary.band_read_ops, summary.band_write_ops,
                      summary.band_read_q, summary.band_write_q))
    exceeded = exceeded_of(delta, seconds, share)
    return {
        "ops": ops, "bands": bands, "delta": counters, "reset": summary.reset,
        "glitches": glitches, "confirmed": bool(summary.flags & native.lib.NM_DELTA_CONFIRMED),
        "dropped": summary.dropped, "exceeded": exceeded,
        "exceeded_us": {key: exceeded[key].us for key in exceeded_limits(kind)},
        "headroom": headroom_of(ops, limits), "queue_length": page["volume_queue_length"],
        "throttled": [key for key in exceeded_limits(kind) if exceeded[key].counted],
        "version": page.version, "page": page.counters,
    }


def fields(iv) -> dict:
    """The record's fields as eager() gives them (pages by their counters)."""
    out = {name: getattr(iv, name) for name in LAZY}
    out["delta"] = iv.delta.counters
    out["throttled"] = iv.throttled()
    out["version"] = iv.page.version
    out["page"] = iv.page.counters
    return out


def random_pages(rng: random.Random, kind: str):
    """A device's successive pages: random IO of any size and latency, limits exceeded now
    and then, a counter that steps back, a spike no device can do, a restart."""
    pages = PageBuilder(kind)
    scopes = list(SCOPE_COUNTERS) if kind == "ebs" else [("instance", "iops"),
                                                         ("instance", "throughput")]
    t = 0.0
    for step in range(120):
        roll = rng.random()
        if roll < 0.03 and step > 2 or step == 60:
            pages.reset()
        reads, writes = rng.choice([0, rng.randrange(1, 50), rng.randrange(1, 20000)]), \
            rng.choice([0, rng.randrange(1, 20000)])
        exceeded = {key: rng.randrange(0, 400_000) for key in scopes if rng.random() < 0.3}
        read_time = pages.counters.get("total_read_time", 0)
        pages.advance(reads, writes, read_bin=rng.randrange(28), write_bin=rng.randrange(28),
                      read_size=rng.choice([512, 4096, 65536]), write_size=16384,
                      band=rng.randrange(5), exceeded=exceeded, queue=rng.randrange(64))
        if (0.03 <= roll < 0.06 or step == 30) and read_time > 10:
            pages.counters["total_read_time"] = read_time - 10  # went down alone
        if 0.06 <= roll < 0.08:
            pages.add("total_write_ops", 10**13)  # held, then confirmed or dropped
            if rng.random() < 0.5:
                yield pages.page(), t
                t += 1.0
                pages.add("total_write_ops", -10**13)
                continue
        yield pages.page(), t
        t += rng.choice([1.0, 1.0, 0.5, 2.0])


@pytest.mark.parametrize("kind", ["instance_store", "ebs"])
@pytest.mark.parametrize("seed", range(4))
def test_a_lazily_built_field_equals_the_eagerly_built_one(kind, seed):
    rng = random.Random(seed)
    serial = "vol-0123456789abcdef0" if kind == "ebs" else "AWS1"
    tracker = DeviceTracker(device(kind=kind, serial=serial), None, share=0.05,
                            episode_gap=3, ongoing_every=60.0)
    tracker.limits_of = lambda _device: LIMITS
    waiting = []  # (record, its eager fields): read only after later steps
    seen = set()
    for raw, t in random_pages(rng, kind):
        iv = tracker.observe(raw, t)
        if iv is None:
            continue
        want = eager(tracker.core.summary(), tracker.core.page(), kind, iv.seconds,
                     iv.share, LIMITS)
        seen.update(name for name in ("reset", "glitches", "confirmed", "dropped",
                                      "throttled") if want[name])
        if rng.random() < 0.5:
            assert fields(iv) == want  # read at once
        else:
            waiting.append((iv, want))
    assert waiting
    for iv, want in waiting:  # built only now, after the device's later steps
        assert fields(iv) == want
    # The sequences reach every kind of page the record flags.
    assert {"reset", "glitches", "throttled"} <= seen


def test_a_record_stays_the_same_after_its_devices_next_step():
    tracker, pages = DeviceTracker(device(), None, share=0.01, episode_gap=3,
                                   ongoing_every=60.0), PageBuilder("instance_store")
    tracker.observe(pages.page(), 0.0)
    pages.advance(reads=100, writes=10, band=1, queue=3,
                  exceeded={("instance", "iops"): 50_000})
    first = tracker.observe(pages.page(), 1.0)
    seen = first.to_json("interval", 1_700_000_000.0, 1.0)  # every field, built now
    write_time = pages.counters["total_write_time"]
    pages.advance(reads=7000, writes=900, read_bin=12, band=3, queue=40,
                  exceeded={("instance", "throughput"): 900_000})
    pages.counters["total_write_time"] = write_time - 1  # the next delta flags a glitch
    second = tracker.observe(pages.page(), 3.0)
    assert second.op("read").ops == 7000 and second.glitches  # the buffers changed
    assert first.to_json("interval", 1_700_000_000.0, 1.0) == seen
    assert (first.op("read").ops, first.queue_length, first.throttled()) == (
        100, 3, [("instance", "iops")])
    assert first.page["volume_queue_length"] == 3 and first.delta["total_read_ops"] == 100
    assert tracker.baseline is second.page


def test_a_record_is_immutable_whether_a_field_is_built_yet_or_not():
    tracker, pages = DeviceTracker(device(), None, share=0.01, episode_gap=3,
                                   ongoing_every=60.0), PageBuilder("instance_store")
    tracker.observe(pages.page(), 0.0)
    pages.advance(reads=1)
    iv = tracker.observe(pages.page(), 1.0)
    for name in ("seconds", "bands", "headroom"):  # eager, lazy not built yet, lazy
        with pytest.raises(AttributeError):
            setattr(iv, name, None)
    assert iv.bands and iv.headroom == ()
    for name in ("bands", "headroom"):  # built now
        with pytest.raises(AttributeError):
            setattr(iv, name, None)
    with pytest.raises(AttributeError):
        iv.latency  # noqa: B018
    assert set(EXCEEDED_COUNTERS) >= set(iv.exceeded_us)
