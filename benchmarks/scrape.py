"""4. A scrape of /metrics at 8 and 32 devices, IO-size-band histograms included."""

from __future__ import annotations

import time

from benchmarks.agent import start_agents
from benchmarks.common import Context, Section, fmt_ms, median, percentile

NAME = "scrape"
TITLE = "4. Scrape latency and size of /metrics"
SIZES = (8, 32)
TARGET = 0.025  # seconds at 32 devices
MIN_RENDERED = 30  # rendered scrapes the target is judged on
GZIP = {"Accept-Encoding": "gzip"}


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    # Renders happen once a tick, so gathering them takes seconds, not rounds.
    wanted, cap = (5, 8.0) if ctx.quick else (MIN_RENDERED + 5, 150.0)
    agents = start_agents(ctx, SIZES, kinds=("fake ioctl", "simulated"))
    try:
        times = {id(a): [] for _, _, a in agents}
        fresh = {id(a): [] for _, _, a in agents}  # scrapes that found a new tick: rendered
        sizes = {id(a): a.scrape()[0] for _, _, a in agents}
        started, r = time.monotonic(), 0
        while (min(len(f) for f in fresh.values()) < wanted
               and time.monotonic() - started < cap):
            order = agents[r % len(agents):] + agents[:r % len(agents)]
            for _, _, a in order:
                body, seconds = a.scrape()
                times[id(a)].append(seconds)
                if body != sizes.get(id(a)):
                    fresh[id(a)].append(seconds)
                sizes[id(a)] = body
            r += 1
            time.sleep(0.2)
        gzipped = {id(a): len(a.scrape(headers=GZIP)[0]) for _, _, a in agents}
        for _, _, a in agents:
            a.stop()
    finally:
        for _, _, a in agents:
            a.kill()
    rows = []
    for n, kind, a in agents:
        t, body, f = times[id(a)], sizes[id(a)], fresh[id(a)]
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        rows.append([n, kind, len(t), fmt_ms(median(t)), fmt_ms(percentile(t, 0.9)),
                     fmt_ms(max(t)), len(f), fmt_ms(median(f)), fmt_ms(percentile(f, 0.9)),
                     f"{len(body) / 1024:,.0f} KiB", f"{gzipped[id(a)] / 1024:,.0f} KiB",
                     f"{series:,}"])
        ctx.log(f"scrape {kind} x{n}: {fmt_ms(median(t))}, first after a tick "
                f"{fmt_ms(median(f))} ({len(f)} rendered), {len(body) / 1024:.0f} KiB")
        if n == 32:
            # Prometheus scrapes every 15-60 s, so it always gets a freshly rendered body:
            # the target is judged on those scrapes, not on the cached ones.
            section.target(f"scrape at 32 devices ({kind}), first after a tick", "< 25 ms",
                           f"{fmt_ms(median(f))} median, {fmt_ms(percentile(f, 0.9))} p90",
                           median(f) < TARGET, f"{len(f)} rendered scrapes",
                           count=len(f), minimum=MIN_RENDERED)
    section.add(
        "Each agent is scraped in turn, a round every 0.2 s, each scrape on a new connection "
        "as Prometheus's first scrape would be, until every agent has served "
        f"{wanted} rendered scrapes (or {cap:.0f} s have passed); the time is from "
        "connecting to the last byte, measured by the client on the same host. Fake ioctl "
        "fleets are all instance-store devices with five IO-size bands each (12 latency "
        "histograms per device); the simulated fleets have two instance-store devices and "
        "the rest EBS. The agent renders /metrics at most once per tick; a scrape that found "
        "a new body (the first after a tick) is one that paid for the render, and is what a "
        "Prometheus scraping every 15 s always gets, so those are shown apart and the "
        f"target is judged on them, given at least {MIN_RENDERED}.",
        "",
    )
    section.table(["devices", "source", "scrapes", "median", "p90", "max", "rendered",
                   "rendered median", "rendered p90", "body", "body gzipped", "samples"], rows)
    section.add(
        "A rendered scrape's time includes the client reading the whole uncompressed body "
        "over loopback; Prometheus asks for gzip (the \"body gzipped\" column, one scrape "
        "each). The simulated agents' renders can land during a tick and share the "
        "interpreter with the simulator stepping every device. The agents export their "
        "default coarse latency buckets (`--histogram.buckets=coarse`); the IO-size-band "
        "histograms are still the largest part of a fake-ioctl body.",
        "",
    )
    return section
