"""The render path: Go-style values, coarse buckets read off the bins, device templates that
never show stale text, bodies rendered ahead in the sampling thread, no prometheus_client."""

import math
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.utils import floatToGoString

from devkit.pages import ScriptedSource, device
from nitrometer import logpage, native
from nitrometer.agent.devicelines import DeviceRenderer, buckets_of
from nitrometer.agent.exporter import render, snapshot
from nitrometer.agent.exposition import (
    COARSE_BAND_EDGES_US,
    COARSE_LATENCY_EDGES_US,
    counts_text,
    fmt,
)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(), st.integers(min_value=0, max_value=1 << 64)))
def test_values_are_written_as_the_python_client_writes_them(value):
    assert fmt(value) == floatToGoString(value)


def test_values_around_the_switch_to_exponents():
    # The Python client's sample values (floatToGoString): Python's repr, except that from
    # 7 integer digits on Go's exponent form is used.
    assert [fmt(v) for v in (999_999, 1_000_000, 1_234_567, 0.5, 1e-5, 1e16, 2 ** 53 + 1)] == [
        "999999.0", "1e+06", "1.234567e+06", "0.5", "1e-05", "1e+16", "9.007199254740992e+15"]
    assert fmt(float("nan")) == "NaN" and fmt(math.inf) == "+Inf" and fmt(-math.inf) == "-Inf"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1 << 40), max_size=40))
def test_cumulative_counts_text(counts):
    running, total = [], 0
    for c in counts:
        total += c
        running.append(total)
    assert counts_text(running) == [floatToGoString(v) + "\n" for v in running]


def hist(counts):
    bounds = logpage.power_of_two_bounds(len(counts))
    bins = [(lo, up, c) for (lo, up), c in zip(bounds, counts)]
    return native.decode(logpage.encode_page("ebs", {}, bins, bins)).read


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1 << 32), min_size=1, max_size=32),
       st.sampled_from([COARSE_LATENCY_EDGES_US, COARSE_BAND_EDGES_US, (1, 2, 3), (1 << 40,)]))
def test_coarse_buckets_equal_the_c_merge(counts, edges):
    h = hist(counts)
    buckets = buckets_of(tuple(h.upper), edges)
    merged, running = native.merge_bins(h, edges), 0
    expected = []
    for c in merged:
        running += c
        expected.append(running)
    assert buckets.values(h, h.counts) == expected
    assert len(buckets.les) == len(expected) and buckets.les[-1] == "+Inf"


def changing(builder, i):
    # Bins and bands that move some ticks and stand still on others, and a device whose
    # layout changes (fewer bins) halfway.
    if i % 3:
        builder.advance(reads=100 + i, writes=7 * (i % 2), read_bin=3 + i % 4,
                        write_bin=9, band=i % 5, queue=i % 3)


def test_kept_templates_write_what_a_fresh_render_writes(rig):
    odd = device("nvme3n1", 'AWS{quote"}')  # braces and quotes in a label value

    def shrinking(builder, i):
        if i == 5:
            builder.bounds = builder.bounds[:20]
            builder.read_counts = builder.read_counts[:20]
            builder.write_counts = builder.write_counts[:20]
        builder.advance(reads=50, writes=5, read_bin=2 + i % 6)

    r = rig([ScriptedSource(device(), None, changing),
             ScriptedSource(odd, None, changing),
             ScriptedSource(device("nvme2n1", "vol-0123", "ebs"), None, shrinking)])
    kept = DeviceRenderer()
    for tick in range(12):
        r.sampler.run(1)
        if tick == 6:
            r.state.buckets = "device"  # a reload to the devices' own bins
        if tick == 9:
            r.state.io_size = False
        with r.state.lock:
            snap = snapshot(r.state)
        for openmetrics in (False, True):
            assert render(snap, devices=kept, openmetrics=openmetrics) == \
                render(snap, devices=DeviceRenderer(), openmetrics=openmetrics)


def test_a_body_scraped_every_tick_is_rendered_ahead_by_the_sampler(rig):
    r = rig([ScriptedSource(device(), None, changing)])
    r.sampler.run(2)
    r.exporter.body(compress=True)
    r.sampler.run(1)
    r.exporter.body(compress=True)  # asked at two versions in a row
    renders = r.exporter.renders
    r.sampler.run(1)  # renders the next one in the sampling thread, right after the tick
    assert r.exporter.renders == renders + 1 and r.exporter.rendered_ahead == 1
    ahead = r.exporter._cache[(False, True)]
    assert ahead[0] == r.state.version
    assert r.exporter.body(compress=True) is ahead[1] and r.exporter.renders == renders + 1
    # The plain text was never asked for: not rendered ahead on its own.
    assert r.exporter._cache[(False, False)][0] == r.state.version  # (gzip's source)
    assert (True, False) not in r.exporter._cache


def test_a_body_scraped_now_and_then_is_not_rendered_ahead(rig):
    r = rig([ScriptedSource(device(), None, changing)])
    r.sampler.run(2)
    r.exporter.body()
    r.sampler.run(3)
    r.exporter.body()
    renders = r.exporter.renders
    r.sampler.run(5)
    assert r.exporter.renders == renders and r.exporter.rendered_ahead == 0


def test_the_render_runs_outside_the_state_lock(rig, monkeypatch):
    r = rig([ScriptedSource(device(), None, changing)])
    r.sampler.run(2)
    held = []
    families = DeviceRenderer.families

    def watched(self, snap):
        held.append(r.state.lock.locked())
        return families(self, snap)

    monkeypatch.setattr(DeviceRenderer, "families", watched)
    r.exporter.body()
    assert held == [False]


def test_the_agent_serves_without_prometheus_client(tmp_path):
    code = (
        "import sys\n"
        "from nitrometer.agent import main, web\n"
        "from nitrometer.agent.exporter import Exporter\n"
        "from nitrometer.agent.state import AgentState\n"
        "body = Exporter(AgentState()).body(openmetrics=True, compress=True)\n"
        "assert body\n"
        "print(sorted(m for m in sys.modules if m.startswith('prometheus_client')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
