"""8. Beside node_exporter: the whole service's footprint against what already runs on a host.

node_exporter (Debian's prometheus-node-exporter, its default collectors, listening on
127.0.0.1 only) and nitrometer on 32 fake instance-store devices whose pages grow every
second run at the same time, and the benchmark scrapes each of them once a second for the
same window as Prometheus 2.x does (its Accept header, gzip, one keep-alive connection to
each). Every process of each service
(nitrometer: the agent, its keeper and reader) is sampled once a second.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from benchmarks.agent import start_agents
from benchmarks.common import (
    ROOT,
    Context,
    Section,
    ServiceUsage,
    fmt_mb,
    fmt_ms,
    median,
    percentile,
)
from benchmarks.fleet import READS_PER_SECOND, growing_pages, in_memory, samples_of, series
from devkit.ports import free_port

NAME = "node_exporter"
TITLE = "8. Beside node_exporter: CPU and memory of the whole service"
DEVICES = 32
BINARIES = ("prometheus-node-exporter", "node_exporter")
# What Prometheus 2.x sends (scrape/scrape.go, scrapeAcceptHeader; acceptEncodingHeader).
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,"
                     "application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
HEADERS = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
MIN_SECONDS = 60  # a window shorter than this is a smoke run: its ratios are not judged
# The done-when of the comparison: nitrometer / node_exporter, same run.
RSS_RATIO, CPU_RATIO, SCRAPE_RATIO, MAX_SAMPLES = 1.5, 1.0, 0.75, 4000


@dataclass
class Scrape:
    seconds: float  # from sending the request (or connecting) to the last byte
    body: bytes  # as served (gzip when the exporter agreed to it)
    content_type: str
    encoding: str = ""  # Content-Encoding
    error: str = ""

    def text(self) -> str:
        return (gzip.decompress(self.body) if self.body[:2] == b"\x1f\x8b"
                else self.body).decode()


class Scraper:
    """One target scraped as Prometheus does: its Accept header and gzip, over one keep-alive
    connection that Go's HTTP transport keeps from one scrape to the next. A kept connection
    the target has closed is opened again once, as the transport retries an idempotent
    request on a connection that turned out dead. The time runs from sending the request
    (or connecting, when there is no connection) to the last byte."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def __call__(self) -> Scrape:
        start = time.perf_counter()
        while True:
            kept = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request("GET", "/metrics", headers=HEADERS)
                resp = self.conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if kept:
                    continue
                return Scrape(time.perf_counter() - start, b"", "", "",
                              f"{type(exc).__name__}: {exc}")
            if resp.will_close:
                self.close()
            error = "" if resp.status == 200 else f"answered {resp.status}"
            return Scrape(time.perf_counter() - start, body,
                          resp.getheader("Content-Type", ""),
                          resp.getheader("Content-Encoding", ""), error)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def scrape(port: int) -> Scrape:
    """One scrape on a connection of its own."""
    scraper = Scraper(port)
    try:
        return scraper()
    finally:
        scraper.close()


class NodeExporter:
    def __init__(self, ctx: Context):
        binary = next((path for path in map(shutil.which, BINARIES) if path), None)
        if binary is None:
            raise RuntimeError("prometheus-node-exporter is not installed: run `make sysdeps`")
        self.port = free_port()
        self.log_file = ctx.workdir / f"node-exporter-{self.port}.log"
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT)
        about = subprocess.run([binary, "--version"], capture_output=True, text=True)
        found = re.search(r"version (\S+)", about.stdout + about.stderr)
        self.version = found[1] if found else "unknown version"

    def wait_ready(self, timeout: float = 30.0) -> Scrape:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node_exporter exited: {self.log_file.read_text()[-1500:]}")
            first = scrape(self.port)
            if not first.error:
                return first
            if time.monotonic() > deadline:
                raise RuntimeError(f"node_exporter did not serve /metrics: {first.error}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def collectors(text: str) -> int:
    """How many collectors node_exporter ran in a scrape (its own per-collector series)."""
    return sum(1 for line in text.splitlines() if line.startswith("node_scrape_collector_success{"))


def shim_cost(ctx: Context, reads: int) -> dict[str, float]:
    """CPU seconds one page read costs the reading process through the fake device (the
    LD_PRELOAD shim answering the ioctl from memory), for a static page and for a page
    sequence: on a real host the kernel and the controller do that work instead."""
    from devkit.fakedev import MODEL_INSTANCE_STORE, FakeNvme, build_shim, identify_bytes

    fake = FakeNvme(in_memory(ctx, ctx.workdir / "shim-cost"), build_shim(ctx.workdir),
                    log_commands=False)  # as the fleet runs it
    pages = growing_pages(1, reads + 1)
    paths = {kind: str(ctx.workdir / "shim-cost" / f"nvme{i}n1")
             for i, kind in enumerate(("static", "sequence"), 1)}
    for kind, path in paths.items():
        fake.add(path, page=pages[0], identify=identify_bytes(f"AWS{kind}", MODEL_INSTANCE_STORE))
    fake.set_sequence(paths["sequence"], pages)
    done = subprocess.run([sys.executable, "-m", "benchmarks.node_exporter", str(reads),
                           *paths.values()], cwd=ROOT, env=fake.env(), capture_output=True,
                          text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"shim cost worker failed: {done.stderr.strip()[-1500:]}")
    per_read = json.loads(done.stdout)
    return {kind: per_read[path] for kind, path in paths.items()}


def shim_worker(reads: int, paths: list[str]) -> dict[str, float]:
    """Runs with the fake device preloaded: the C core's Get Log Page, nothing around it."""
    from nitrometer import native

    per_read = {}
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        start = time.process_time()
        for _ in range(reads):
            native.get_log_page(fd, 8192, nsid=1, log_id=0xD0)
        per_read[path] = (time.process_time() - start) / reads
        os.close(fd)
    return per_read


def measure(ctx: Context, window: int) -> dict:
    node = NodeExporter(ctx)
    agents = []
    try:
        first = node.wait_ready()
        # Pages to grow through start-up (every device polled twice) and the whole window.
        agents = start_agents(ctx, (DEVICES,), kinds=("fake ioctl",), seconds=window + 120)
        [(_, _, agent)] = agents
        targets = {"node_exporter": (node.port, node.proc.pid),
                   "nitrometer": (agent.port, agent.proc.pid)}
        usage = {label: ServiceUsage(pid) for label, (_, pid) in targets.items()}
        scrapers = {label: Scraper(port) for label, (port, _) in targets.items()}
        scrapes: dict[str, list[Scrape]] = {label: [] for label in targets}
        time.sleep(2.0)
        start = time.monotonic()
        for second in range(window + 1):
            time.sleep(max(start + second - time.monotonic(), 0))  # on the 1 s schedule
            for u in usage.values():
                u.sample()
            if second == window:
                break
            order = list(targets) if second % 2 else list(reversed(targets))  # neither first
            for label in order:
                scrapes[label].append(scrapers[label]())
        positions = agent.fleet.positions()
        for scraper in scrapers.values():
            scraper.close()
        agent.stop()
    finally:
        for _, _, a in agents:
            a.kill()
        node.stop()
    return {"node": node, "first": first, "usage": usage, "scrapes": scrapes,
            "positions": positions, "growth": agent.fleet.seconds}


def figures(scrapes: list[Scrape], usage: ServiceUsage) -> dict:
    served = [s for s in scrapes if not s.error]
    texts = [s.text() for s in served]
    counts = [samples_of(t) for t in texts]
    times = [s.seconds for s in served]
    return {
        "served": len(served), "asked": len(scrapes), "times": times,
        "median": median(times) if times else float("nan"),
        "p90": percentile(times, 0.9) if times else float("nan"),
        "samples": counts, "decoded": [len(t.encode()) for t in texts],
        "gzip": [len(s.body) for s in served], "texts": texts,
        "types": sorted({f"{s.content_type} ({s.encoding or 'not compressed'})"
                         for s in served}),
        "errors": [s.error for s in scrapes if s.error][:3],
        "rss": median(usage.rss), "rss_max": max(usage.rss), "pss": median(usage.pss),
        "cpu": usage.cpu_percent(), "cpu_seconds": usage.cpu_seconds(),
    }


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    window = 8 if ctx.quick else 90
    m = measure(ctx, window)
    shim = shim_cost(ctx, 100 if ctx.quick else 300)
    usage = m["usage"]
    f = {label: figures(m["scrapes"][label], usage[label]) for label in usage}
    for label, x in f.items():
        if not x["served"]:
            raise RuntimeError(f"{label} served none of {x['asked']} scrapes: {x['errors']}")
    nm, ne = f["nitrometer"], f["node_exporter"]
    intervals = usage["nitrometer"].intervals
    check = poll_check(nm["texts"], DEVICES)
    for label, x in f.items():
        ctx.log(f"node_exporter: {label}: {x['cpu']:.2f} % CPU, {fmt_mb(x['rss'])} RSS, "
                f"scrape {fmt_ms(x['median'])}, {x['served']}/{x['asked']} served")
    ctx.log(f"node_exporter: nitrometer ticks {check['ticks']:.0f}, pages per device "
            f"{check['min_pages']:.0f}-{check['max_pages']:.0f} in {window} s")

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else float("nan")

    rss_ratio, cpu_ratio = ratio(nm["rss"], ne["rss"]), ratio(nm["cpu"], ne["cpu"])
    scrape_ratio = ratio(nm["median"], ne["median"])
    rss_n = f"{len(usage['nitrometer'].rss)} one-second samples each"
    cpu_n = f"{intervals} one-second intervals"
    scr_n = f"{nm['served']} and {ne['served']} scrapes"
    section.add(
        f"node_exporter {m['node'].version} with the package's default collectors "
        f"({collectors(m['first'].text())} ran in its first scrape; no collector flags given) "
        f"and nitrometer (`nitrometer run`, source ioctl) on {DEVICES} fake instance-store "
        "devices: 8 KiB pages with five IO-size bands, each page one second of a busy disk "
        f"past the last ({READS_PER_SECOND:,} reads a second, the latency mix moving), read "
        "through the real ioctl path from the LD_PRELOAD fake device. Both run at the same "
        f"time and are scraped once a second for {window} s, in turn, with the Accept header "
        f"Prometheus 2.x sends (`{PROMETHEUS_ACCEPT}`) and `Accept-Encoding: gzip`, each over "
        "one keep-alive connection, which Prometheus's HTTP client keeps between scrapes. They "
        f"served: node_exporter {', '.join(ne['types']) or 'nothing'}; nitrometer "
        f"{', '.join(nm['types']) or 'nothing'}.",
        "",
        "Each service is every process of its tree, sampled once a second (psutil, children "
        "recursively; a process forked later is picked up at the next sample). CPU is the "
        "tree's CPU time over the window, in % of one core, a process that ended in the "
        "window included (through its parent). RSS is the sum of the processes' resident "
        "sets; the target is judged on it, as the comparison is stated. Forked processes "
        "share pages, which RSS counts in each of them: PSS (each shared page split among "
        "its sharers) is the honest figure for what the service adds to the host, and is "
        "given beside it.",
        "",
    )
    rows = [
        ["RSS of the service, median (max)", f"{fmt_mb(nm['rss'])} ({fmt_mb(nm['rss_max'])})",
         f"{fmt_mb(ne['rss'])} ({fmt_mb(ne['rss_max'])})", f"{rss_ratio:.2f}x", rss_n],
        ["PSS of the service, median", fmt_mb(nm["pss"]), fmt_mb(ne["pss"]),
         f"{ratio(nm['pss'], ne['pss']):.2f}x", rss_n],
        ["CPU over the window (CPU seconds)",
         f"{nm['cpu']:.2f} % ({nm['cpu_seconds']:.2f} s)",
         f"{ne['cpu']:.2f} % ({ne['cpu_seconds']:.2f} s)", f"{cpu_ratio:.2f}x", cpu_n],
        ["scrape median / p90", f"{fmt_ms(nm['median'])} / {fmt_ms(nm['p90'])}",
         f"{fmt_ms(ne['median'])} / {fmt_ms(ne['p90'])}", f"{scrape_ratio:.2f}x", scr_n],
        ["samples per scrape, median (max)", *(f"{median(x['samples']):,.0f} "
                                               f"({max(x['samples']):,})" for x in (nm, ne)),
         "", scr_n],
        ["body decoded / gzip, median", *(f"{median(x['decoded']) / 1024:,.0f} / "
                                          f"{median(x['gzip']) / 1024:,.0f} KiB"
                                          for x in (nm, ne)), "", scr_n],
        ["scrapes served", f"{nm['served']} of {nm['asked']}", f"{ne['served']} of {ne['asked']}",
         "", "every second of the window"],
    ]
    section.table(["", "nitrometer", "node_exporter", "nitrometer / node_exporter",
                   "rests on"], rows)
    section.add("Each process's share (CPU over the same window; RSS and PSS as medians of "
                "its own samples):", "")
    section.table(["service", "process", "pid", "CPU", "share of the service's CPU",
                   "RSS", "PSS", "samples"], share_rows(usage))
    section.add(
        f"The agent polled every device every second: its own metrics show {check['ticks']:.0f} "
        f"ticks between the first and the last scrape ({window - 1} s apart), and each "
        f"device's `ec2_nvme_read_ops_total` grew by {check['min_pages']:.0f} to "
        f"{check['max_pages']:.0f} seconds of load ({READS_PER_SECOND:,} reads each), with "
        f"{check['errors']:.0f} device errors and {check['overruns']:.0f} overruns. The fake "
        f"devices had served {min(m['positions'])} to {max(m['positions'])} of their "
        f"{m['growth']} pages by the end, start-up included.",
        "",
    )
    section.add(
        "The fake device answers each read inside the reading process (its LD_PRELOAD shim "
        "in the reader), from memory: it reads its files again only when the fixture "
        "changes them, and each new page of a sequence once. Measured alone, a page read "
        f"(two 4 KiB Get Log Page commands) costs {shim['sequence'] * 1e6:.1f} us of CPU "
        f"with a page sequence ({shim['static'] * 1e6:.1f} us for a static page), so about "
        f"{shim['sequence'] * DEVICES * 100:.3f} % of a core of the service's CPU above is "
        "the fake device's. What a real device costs the reader instead, the kernel's own "
        "work for an admin command (the passthrough ioctl, mapping the buffer, waiting for "
        "the controller's completion), is not in these figures. The targets are judged on "
        "the figures as measured, the fake device's share included.",
        "",
    )
    if nm["errors"] or ne["errors"]:
        section.add(f"Failed scrapes: {'; '.join(nm['errors'] + ne['errors'])}.", "")
    every = nm["served"] == nm["asked"] and ne["served"] == ne["asked"]
    polled = (check["min_pages"] >= window - 2 and check["ticks"] >= window - 2
              and check["errors"] == 0)
    section.target("both exporters served every 1 s scrape", "every scrape",
                   f"nitrometer {nm['served']}/{nm['asked']}, node_exporter "
                   f"{ne['served']}/{ne['asked']}", every, scr_n)
    section.target(f"nitrometer polled all {DEVICES} devices every second", "every second",
                   f"{check['min_pages']:.0f}-{check['max_pages']:.0f} new pages per device in "
                   f"{window - 1} s, {check['errors']:.0f} errors", polled,
                   f"{DEVICES} devices, {window} s")
    section.target(f"service RSS / node_exporter, {DEVICES} devices", f"<= {RSS_RATIO}x",
                   f"{rss_ratio:.2f}x ({fmt_mb(nm['rss'])} / {fmt_mb(ne['rss'])})",
                   rss_ratio <= RSS_RATIO, rss_n, count=intervals, minimum=MIN_SECONDS)
    section.target(f"service CPU / node_exporter, {DEVICES} devices", f"<= {CPU_RATIO:g}x",
                   f"{cpu_ratio:.2f}x ({nm['cpu']:.2f} % / {ne['cpu']:.2f} %)",
                   cpu_ratio <= CPU_RATIO, cpu_n, count=intervals, minimum=MIN_SECONDS)
    section.target(f"median scrape / node_exporter, {DEVICES} devices", f"<= {SCRAPE_RATIO}x",
                   f"{scrape_ratio:.2f}x ({fmt_ms(nm['median'])} / {fmt_ms(ne['median'])})",
                   scrape_ratio <= SCRAPE_RATIO, scr_n, count=min(nm["served"], ne["served"]),
                   minimum=MIN_SECONDS)
    section.target(f"samples per scrape, {DEVICES} devices", f"< {MAX_SAMPLES:,}",
                   f"{max(nm['samples']):,} (max)", max(nm["samples"]) < MAX_SAMPLES,
                   f"{nm['served']} scrapes")
    return section


def poll_check(texts: list[str], devices: int) -> dict:
    """From the agent's own metrics in the first and last scrape of the window: its ticks,
    the seconds of load each device's page grew by (new pages it committed), errors."""
    first, last = texts[0], texts[-1]

    def grown(name: str) -> float:
        return sum(series(last, name).values()) - sum(series(first, name).values())

    before, after = (series(text, "ec2_nvme_read_ops_total") for text in (first, last))
    pages = [(after[k] - before.get(k, after[k])) / READS_PER_SECOND for k in after]
    pages += [0.0] * (devices - len(pages))
    return {"ticks": grown("nitrometer_poll_duration_seconds_count"),
            "min_pages": min(pages), "max_pages": max(pages),
            "errors": grown("nitrometer_device_errors_total"),
            "overruns": grown("nitrometer_poll_overruns_total")}


def share_rows(usage: dict[str, ServiceUsage]) -> list[list]:
    roles = {1: "child of the {}", 2: "grandchild of the {}"}
    rows = []
    for label, u in usage.items():
        cpu = u.cpu_seconds()
        main = "agent" if label == "nitrometer" else "exporter"
        for p in u.processes.values():
            role = main if p.depth == 0 else roles.get(p.depth, "descendant of the {}").format(main)
            started = "" if p.seen_from_start else ", started in the window"
            rows.append([label, f"{p.name} ({role}{started})", p.pid,
                         f"{u.share_percent(p.cpu_seconds):.2f} % ({p.cpu_seconds:.2f} s)",
                         f"{p.cpu_seconds / cpu * 100:.0f} %" if cpu > 0 else "n/a",
                         fmt_mb(median(p.rss)), fmt_mb(median(p.pss)) if p.pss else "n/a",
                         len(p.rss)])
        ended = u.ended_cpu_seconds()
        if ended > 0.005:
            rows.append([label, "processes that ended in the window", "",
                         f"{u.share_percent(ended):.2f} % ({ended:.2f} s)",
                         f"{ended / cpu * 100:.0f} %" if cpu > 0 else "n/a", "", "", ""])
    return rows


if __name__ == "__main__":
    print(json.dumps(shim_worker(int(sys.argv[1]), sys.argv[2:])))
