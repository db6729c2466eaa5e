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


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    # The loaded phase runs long enough for MIN_TICKS ticks and a few to spare.
    quiet, loaded = (4.0, 6.0) if ctx.quick else (10.0, MIN_TICKS * INTERVAL + 10.0)
    [(_, _, agent)] = start_agents(ctx, (DEVICES,), kinds=("fake ioctl",))
    try:
        before = metric(agent.scrape()[0].decode(), "nitrometer_poll_overruns_total")
        quiet_start = time.monotonic()
        time.sleep(quiet)
        load_start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "benchmarks.load", str(agent.port),
                               str(CLIENTS), str(loaded)], cwd=ROOT, capture_output=True,
                              text=True, timeout=loaded + 60)
        load_end = load_start + loaded  # clients still waiting after this are not load
        if done.returncode:
            raise RuntimeError(f"load generator failed: {done.stderr.strip()[-1500:]}")
        load = json.loads(done.stdout)
        time.sleep(2.0)  # the scrapes still queued drain first
        body = agent.scrape(timeout=120)[0].decode()
        overruns = metric(body, "nitrometer_poll_overruns_total") - before
        polls = metric(body, "nitrometer_poll_duration_seconds_count")
        poll_mean = metric(body, "nitrometer_poll_duration_seconds_sum") / max(polls, 1)
        ticks = agent.stop()
    finally:
        agent.kill()
    origin = ticks[0]
    rows = []
    results = {}
    for label, (a, b) in (("quiet", (quiet_start, load_start)),
                          (f"{CLIENTS} clients scraping", (load_start, load_end))):
        late, missed = lateness(ticks, a, b, origin)
        counted = len(late)
        late = late or [float("nan")]
        gaps = [y - x for x, y in zip(ticks, ticks[1:]) if a <= y and x < b] or [0.0]
        results[label] = (late, missed)
        rows.append([label, counted, fmt_ms(median(late)), fmt_ms(percentile(late, 0.99)),
                     fmt_ms(max(late)), missed, f"{max(gaps):.2f} s"])
    lat = load["latencies"] or [float("nan")]
    busy = load.get("busy_latencies") or [float("nan")]
    loaded_late, loaded_missed = results[f"{CLIENTS} clients scraping"]
    p99 = percentile(loaded_late, 0.99)
    ctx.log(f"jitter: p99 {fmt_ms(p99)} under load, {loaded_missed} missed, "
            f"{load['requests']} scrapes")
    section.add(
        f"An agent with {DEVICES} fake-ioctl instance-store devices (five IO-size bands "
        f"each), {quiet:.0f} s quiet, then {CLIENTS} concurrent clients (asyncio, one "
        f"process, loopback) scraping back to back for {loaded:.0f} s. Lateness is the start "
        "of each tick against its slot on the 1 s deadline schedule; the ticks column is how "
        "many the percentiles rest on (the quiet phase is a baseline, not judged).",
        "",
    )
    section.table(["phase", "ticks", "p50 late", "p99 late", "max late", "missed slots",
                   "longest gap"], rows)
    section.add(
        f"Under load: {load['requests']:,} scrapes served ({load['requests'] / loaded:,.1f}/s), "
        f"{load['errors']} failed; scrape latency p50 {fmt_ms(median(lat))}, p99 "
        f"{fmt_ms(percentile(lat, 0.99))}. {load.get('busy', 0):,} scrapes were turned away "
        f"with 503 because enough were in flight (answered in {fmt_ms(median(busy))} "
        f"median). The agent's overrun counter rose by "
        f"{overruns:.0f}; its mean poll (one tick over all devices) took {fmt_ms(poll_mean)} "
        f"over its {polls:,.0f} polls.",
        "",
    )
    section.target(f"tick lateness p99 under {CLIENTS} scraping clients",
                   f"< {TARGET * 1e3:.0f} ms", fmt_ms(p99),
                   p99 < TARGET, f"{len(loaded_late)} ticks", count=len(loaded_late),
                   minimum=MIN_TICKS)
    section.target("missed ticks under load", "none",
                   f"{loaded_missed} missed, overruns +{overruns:.0f}",
                   loaded_missed == 0 and overruns == 0, f"{loaded:.0f} s of 1 s slots")
    return section
