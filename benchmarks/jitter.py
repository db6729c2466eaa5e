"""5. The 1 s poll schedule under scrape load: tick jitter and missed ticks.

One agent with 32 fake-ioctl devices runs quiet for a while, then 50 clients scrape it as
fast as they can. Jitter is how late each tick started against its slot on the deadline
schedule (first tick + k seconds); a missed tick is a slot with no tick, and the agent's
own overrun counter is read as well.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from benchmarks.agent import start_agents
from benchmarks.common import ROOT, Context, Section, fmt_ms, median, percentile
from benchmarks.fleet import metric

NAME = "jitter"
TITLE = "5. Poll schedule under scrape load"
DEVICES = 32
CLIENTS = 50
INTERVAL = 1.0
TARGET = 0.005  # p99 lateness, seconds
MIN_TICKS = 300  # a p99 needs at least this many ticks to be more than the maximum


def lateness(ticks: list[float], start: float, end: float, origin: float):
    """(lateness of each tick started in [start, end), slots in that window with no tick)."""
    late, slots = [], set()
    for t in ticks:
        if start <= t < end:
            k = round((t - origin) / INTERVAL)
            late.append(t - origin - k * INTERVAL)
            slots.add(k)
    first, last = round((start - origin) / INTERVAL), round((end - origin) / INTERVAL) - 1
    expected = {k for k in range(first + 1, last) if origin + k * INTERVAL >= start}
    return late, len(expected - slots)


LOADS = (("text", "text format, uncompressed", []),
         ("prometheus", "as Prometheus asks (OpenMetrics, gzip)", ["prometheus"]))


def load_phase(agent, loaded: float, args: list[str]) -> tuple[float, float, dict]:
    """CLIENTS clients for `loaded` seconds: (start, end, what benchmarks.load reported)."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "benchmarks.load", str(agent.port),
                           str(CLIENTS), str(loaded), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=loaded + 60)
    if done.returncode:
        raise RuntimeError(f"load generator failed: {done.stderr.strip()[-1500:]}")
    time.sleep(2.0)  # the scrapes still queued drain first, before the next phase
    return start, start + loaded, json.loads(done.stdout)  # later clients are not load


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    # Each loaded phase runs long enough for MIN_TICKS ticks and a few to spare.
    quiet, loaded = (4.0, 6.0) if ctx.quick else (10.0, MIN_TICKS * INTERVAL + 10.0)
    [(_, _, agent)] = start_agents(ctx, (DEVICES,), kinds=("fake ioctl",))
    try:
        before = metric(agent.scrape()[0].decode(), "nitrometer_poll_overruns_total")
        quiet_start = time.monotonic()
        time.sleep(quiet)
        phases = [("quiet", quiet_start, time.monotonic(), None)]
        for name, _label, args in LOADS:
            start, end, load = load_phase(agent, loaded, args)
            phases.append((name, start, end, load))
        body = agent.scrape(timeout=120)[0].decode()
        overruns = metric(body, "nitrometer_poll_overruns_total") - before
        polls = metric(body, "nitrometer_poll_duration_seconds_count")
        poll_mean = metric(body, "nitrometer_poll_duration_seconds_sum") / max(polls, 1)
        ticks = agent.stop()
    finally:
        agent.kill()
    origin = ticks[0]
    labels = {name: f"{CLIENTS} clients, {label}" for name, label, _ in LOADS}
    rows, notes, results = [], [], {}
    for name, a, b, load in phases:
        late, missed = lateness(ticks, a, b, origin)
        counted = len(late)
        late = late or [float("nan")]
        gaps = [y - x for x, y in zip(ticks, ticks[1:]) if a <= y and x < b] or [0.0]
        results[name] = (late, missed)
        rows.append([labels.get(name, name), counted, fmt_ms(median(late)),
                     fmt_ms(percentile(late, 0.99)), fmt_ms(max(late)), missed,
                     f"{max(gaps):.2f} s"])
        if load is None:
            continue
        lat = load["latencies"] or [float("nan")]
        busy = load.get("busy_latencies") or [float("nan")]
        notes.append(
            f"{labels[name]}: {load['requests']:,} scrapes served "
            f"({load['requests'] / loaded:,.1f}/s), {load['errors']} failed; scrape latency "
            f"p50 {fmt_ms(median(lat))}, p99 {fmt_ms(percentile(lat, 0.99))}; "
            f"{load.get('busy', 0):,} turned away with 503 because enough were in flight "
            f"(answered in {fmt_ms(median(busy))} median).")
        ctx.log(f"jitter ({name}): p99 {fmt_ms(percentile(late, 0.99))} under load, "
                f"{missed} missed, {load['requests']} scrapes")
    section.add(
        f"An agent with {DEVICES} fake-ioctl instance-store devices (five IO-size bands "
        f"each), {quiet:.0f} s quiet, then {CLIENTS} concurrent clients (asyncio, one "
        f"process, loopback) scraping back to back for {loaded:.0f} s asking for the text "
        f"format uncompressed, then {loaded:.0f} s more asking as Prometheus does "
        "(OpenMetrics, gzip: a body a fifteenth the size, so many more scrapes a second). "
        "Lateness is the start of each tick against its slot on the 1 s deadline schedule; "
        "the ticks column is how many the percentiles rest on (the quiet phase is a "
        "baseline, not judged).",
        "",
    )
    section.table(["phase", "ticks", "p50 late", "p99 late", "max late", "missed slots",
                   "longest gap"], rows)
    section.add(
        " ".join(notes) + f" The agent's overrun counter rose by {overruns:.0f}; its mean "
        f"poll (one tick over all devices) took {fmt_ms(poll_mean)} over its {polls:,.0f} "
        "polls.",
        "",
    )
    missed_total = 0
    for name, _label, _args in LOADS:
        late, missed = results[name]
        missed_total += missed
        p99 = percentile(late, 0.99)
        section.target(f"tick lateness p99 under {labels[name]}", f"< {TARGET * 1e3:.0f} ms",
                       fmt_ms(p99), p99 < TARGET, f"{len(late)} ticks", count=len(late),
                       minimum=MIN_TICKS)
    section.target("missed ticks under load", "none",
                   f"{missed_total} missed, overruns +{overruns:.0f}",
                   missed_total == 0 and overruns == 0, f"{2 * loaded:.0f} s of 1 s slots")
    return section
