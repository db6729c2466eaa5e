"""4. A scrape of /metrics at 8 and 32 devices beside node_exporter, and what a render costs.

node_exporter and nitrometer agents on fake-ioctl devices run at the same time; each is
scraped once a second on one schedule, as Prometheus does: its Accept header (OpenMetrics
first), gzip, one keep-alive connection to each. Then, in this process, the render of a
32-device state taken apart.
"""

from __future__ import annotations

import gzip
import time

from benchmarks.agent import start_agents
from benchmarks.common import Context, Section, fmt_ms, median, percentile
from benchmarks.node_exporter import NodeExporter, Scraper

NAME = "scrape"
TITLE = "4. Scrape latency and size of /metrics"
SIZES = (8, 32)
RATIO_TARGET = 0.75  # median scrape at 32 devices against node_exporter's, same run
SAMPLES_TARGET = 4000  # samples per scrape at 32 devices
MIN_SCRAPES = 60
RENDER_DEVICES = 32


def samples(body: bytes) -> tuple[int, int]:
    """(samples, decoded size) of a body, gzipped or not."""
    text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    count = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    return count, len(text)


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    window = 10 if ctx.quick else MIN_SCRAPES + 5
    node = NodeExporter(ctx)
    agents = []
    try:
        node.wait_ready()
        agents = start_agents(ctx, SIZES, kinds=("fake ioctl",))
        targets = [("node_exporter", node.port)]
        targets += [(f"nitrometer, {n} fake-ioctl devices", a.port) for n, _, a in agents]
        times = {label: [] for label, _ in targets}
        scrapers = {port: Scraper(port) for _, port in targets}
        last = {}
        time.sleep(2.0)
        start = time.monotonic()
        for second in range(window):
            time.sleep(max(start + second - time.monotonic(), 0))  # on the 1 s schedule
            order = targets[second % len(targets):] + targets[:second % len(targets)]
            for label, port in order:  # each goes first in turn
                done = scrapers[port]()
                if done.error:
                    raise RuntimeError(f"127.0.0.1:{port}/metrics: {done.error}")
                times[label].append(done.seconds)
                last[label] = (done.body, done.content_type)
        for scraper in scrapers.values():
            scraper.close()
        for _, _, a in agents:
            a.stop()
    finally:
        for _, _, a in agents:
            a.kill()
        node.stop()
    anchor = median(times["node_exporter"])
    rows = []
    for label, _ in targets:
        t, (body, kind) = times[label], last[label]
        count, decoded = samples(body)
        rows.append([label, len(t), fmt_ms(median(t)), fmt_ms(percentile(t, 0.9)),
                     fmt_ms(max(t)), f"{median(t) / anchor:.2f}x", kind.split(";")[0],
                     f"{len(body) / 1024:,.0f} KiB", f"{decoded / 1024:,.0f} KiB",
                     f"{count:,}"])
        ctx.log(f"scrape {label}: {fmt_ms(median(t))} median, {count} samples")
        if label.startswith(f"nitrometer, {SIZES[-1]} "):
            ratio = median(t) / anchor
            section.target(f"scrape at {SIZES[-1]} devices against node_exporter's, same run",
                           f"<= {RATIO_TARGET}x", f"{ratio:.2f}x ({fmt_ms(median(t))} / "
                           f"{fmt_ms(anchor)})", ratio <= RATIO_TARGET,
                           f"{len(t)} scrapes each", count=len(t), minimum=MIN_SCRAPES)
            section.target(f"samples per scrape at {SIZES[-1]} devices", f"< {SAMPLES_TARGET:,}",
                           f"{count:,}", count < SAMPLES_TARGET, "1 scrape (the count is fixed)")
    section.add(
        f"node_exporter {node.version} (default collectors) and nitrometer agents on "
        f"{' and '.join(map(str, SIZES))} fake-ioctl instance-store devices (five IO-size "
        "bands each, the default coarse buckets), all running at once, each scraped once a "
        f"second for {window} s on one schedule, taking turns at going first, with the "
        "headers Prometheus sends (OpenMetrics preferred, gzip) over one keep-alive "
        "connection each, as Prometheus keeps it. The time is from sending the request "
        "to the last byte of the compressed body, measured by the client on the same host; "
        "the ratio is against node_exporter's median in the same run. A body scraped at "
        "every tick is rendered and compressed in the agent's sampling thread right after "
        "the tick, so these scrapes are served from that cache.",
        "",
    )
    section.table(["exporter", "scrapes", "median", "p90", "max", "median / node_exporter",
                   "format", "body (gzip)", "body decoded", "samples"], rows)
    render_costs(ctx, section)
    return section


def render_costs(ctx: Context, section: Section) -> None:
    """The render of a 32-device state in this process, step by step, changing or not."""
    from benchmarks.render_costs import measure

    rounds = 10 if ctx.quick else 60
    rows = measure(RENDER_DEVICES, rounds)
    section.add(
        f"What a render costs, in this process: an agent state of {RENDER_DEVICES} "
        "instance-store devices (five IO-size bands) from the sampling engine over scripted "
        "pages, after each of "
        f"{rounds} ticks. \"Pages moving\": every device's counters and some of its bins "
        "change every tick; \"pages standing\": the devices report the same page (an idle "
        "host, or the fake devices above). The render copies the state under the lock "
        "(snapshot), writes the text outside it, and is compressed once per format; gzip "
        "level 1 is what the agent uses, level 6 (gzip's default) is shown for comparison. "
        "A device's lines (counters, histograms, peaks) are written by the C core, one call "
        "per device; \"device lines in Python\" writes them from Python templates instead, "
        "on the same ticks. Templates "
        "held: what a renderer keeps from one render to the next (tracemalloc, plus its C "
        "memory). Medians over the rounds.",
        "",
    )
    section.table(["pages", "rounds", "snapshot (under the lock)", "render text",
                   "render OpenMetrics", "gzip level 1", "gzip level 6", "gzip 1 size",
                   "render text / in Python", "templates held"], rows)
