"""The render of /metrics in process: snapshot, text, OpenMetrics, gzip, after each tick of
an agent state built by the real sampling engine over scripted instance-store pages; the
device lines written by the C core, and in Python beside it (same ticks, same state)."""

from __future__ import annotations

import gc
import gzip
import time
import tracemalloc

from benchmarks.common import fmt_ms, median
from devkit.pages import ScriptedSource, device


def moving(builder, i):
    builder.advance(reads=800 + 13 * i, writes=300 + i, read_bin=5 + i % 3, write_bin=9 + i % 2,
                    read_size=4096, write_size=65536, band=i % 5, queue=i % 4)
    builder.advance(reads=100, writes=30, read_bin=12, write_bin=3, band=(i + 2) % 5)


def standing(builder, i):
    if i == 0:
        moving(builder, i)


def templates_held(in_c: bool, snap) -> int:
    """Bytes a renderer keeps from one render to the next (its templates, its buffer)."""
    from nitrometer.agent.devicelines import DeviceRenderer
    from nitrometer.agent.exporter import render

    render(snap, devices=DeviceRenderer(in_c=in_c))  # the shared label caches, filled
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        renderer = DeviceRenderer(in_c=in_c)
        render(snap, devices=renderer)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held + renderer.c_bytes()


def measure(devices: int, rounds: int) -> list[list]:
    from nitrometer.agent.devicelines import DeviceRenderer
    from nitrometer.agent.exporter import render, snapshot
    from nitrometer.agent.sampler import Sampler
    from nitrometer.agent.state import AgentState
    from nitrometer.collectors.base import FastClock

    rows = []
    for label, script in (("moving", moving), ("standing", standing)):
        clock = FastClock(0)
        sources = [ScriptedSource(device(f"nvme{i}n1", f"AWS{i:017d}"), clock, script)
                   for i in range(1, devices + 1)]
        state = AgentState()
        sampler = Sampler(state, lambda sources=sources: sources, clock=clock)
        writers = {True: (DeviceRenderer(), DeviceRenderer()),  # text, OpenMetrics
                   False: (DeviceRenderer(in_c=False), DeviceRenderer(in_c=False))}
        sampler.run(3)
        steps = {in_c: {k: [] for k in ("snap", "text", "om", "gz1", "gz6")}
                 for in_c in writers}
        size = 0
        for _ in range(rounds):
            sampler.run(1)
            for in_c, (renderer, om_renderer) in writers.items():  # one after the other
                t0 = time.perf_counter()
                with state.lock:
                    snap = snapshot(state)
                t1 = time.perf_counter()
                text = render(snap, devices=renderer)
                t2 = time.perf_counter()
                render(snap, devices=om_renderer, openmetrics=True)
                t3 = time.perf_counter()
                size = len(gzip.compress(text, compresslevel=1, mtime=0))
                t4 = time.perf_counter()
                gzip.compress(text, compresslevel=6, mtime=0)
                t5 = time.perf_counter()
                for key, seconds in zip(steps[in_c],
                                        (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                    steps[in_c][key].append(seconds)
        python_text = median(steps[False]["text"])
        for in_c in writers:
            name = label if in_c else f"{label}, device lines in Python"
            rows.append([name, rounds] + [fmt_ms(median(v)) for v in steps[in_c].values()]
                        + [f"{size / 1024:,.0f} KiB",
                           f"{median(steps[in_c]['text']) / python_text:.2f}x",
                           f"{templates_held(in_c, snap) / 1024:,.0f} KiB"])
    return rows
