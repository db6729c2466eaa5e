"""8. Beside node_exporter: what an exporter costs, with the Prometheus node exporter as the anchor.

node_exporter (Debian's prometheus-node-exporter, its default collectors, listening on
127.0.0.1 only) and nitrometer agents on fake-ioctl devices run at the same time, and the
benchmark scrapes each of them once a second for the same window, asking for gzip as
Prometheus does. Each process's CPU time and resident memory are sampled once a second.
"""

from __future__ import annotations

import gzip
import http.client
import re
import shutil
import subprocess
import time

from benchmarks.agent import start_agents
from benchmarks.common import Context, Section, Usage, fmt_mb, fmt_ms, median
from devkit.ports import free_port

NAME = "node_exporter"
TITLE = "8. Beside node_exporter: CPU and memory of an exporter"
SIZES = (8, 32)
BINARIES = ("prometheus-node-exporter", "node_exporter")
HEADERS = {"Accept-Encoding": "gzip",
           "Accept": "text/plain;version=0.0.4;q=0.9,*/*;q=0.1"}


def scrape(port: int) -> tuple[int, float, bytes]:
    """(compressed body size, seconds from connecting to the last byte, body)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers=HEADERS)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"127.0.0.1:{port}/metrics answered {resp.status}")
    finally:
        conn.close()
    return len(body), time.perf_counter() - start, body


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

    def wait_ready(self, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node_exporter exited: {self.log_file.read_text()[-1500:]}")
            try:
                return scrape(self.port)[2]
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise RuntimeError("node_exporter did not serve /metrics") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def collectors(gzipped: bytes) -> int:
    """How many collectors node_exporter ran in a scrape (its own per-collector series)."""
    text = gzip.decompress(gzipped) if gzipped[:2] == b"\x1f\x8b" else gzipped
    return sum(1 for line in text.decode().splitlines()
               if line.startswith("node_scrape_collector_success{"))


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    window = 8 if ctx.quick else 120
    node = NodeExporter(ctx)
    agents = []
    try:
        first = node.wait_ready()
        agents = start_agents(ctx, SIZES, kinds=("fake ioctl",))
        targets = [("node_exporter", node.port, node.proc.pid)]
        targets += [(f"nitrometer, {n} fake-ioctl devices", a.port, a.proc.pid)
                    for n, _, a in agents]
        usage = {label: Usage(pid) for label, _, pid in targets}
        scrapes = {label: [] for label, _, _ in targets}
        sizes = {label: 0 for label, _, _ in targets}
        time.sleep(2.0)
        start = time.monotonic()
        for second in range(window + 1):
            time.sleep(max(start + second - time.monotonic(), 0))  # on the 1 s schedule
            for label, _, _ in targets:
                usage[label].sample()
            if second == window:
                break
            for label, port, _ in targets:
                sizes[label], seconds, _ = scrape(port)
                scrapes[label].append(seconds)
        for _, _, a in agents:
            a.stop()
    finally:
        for _, _, a in agents:
            a.kill()
        node.stop()
    rows, results = [], {}
    for label, _, _ in targets:
        u, t = usage[label], scrapes[label]
        results[label] = (u.cpu_percent(), median(u.rss))
        rows.append([label, f"{u.cpu_percent():.2f} %", u.intervals, fmt_mb(median(u.rss)),
                     fmt_mb(max(u.rss)), len(u.rss), len(t), fmt_ms(median(t)),
                     f"{sizes[label] / 1024:,.0f} KiB"])
        ctx.log(f"node_exporter: {label}: {u.cpu_percent():.2f} % CPU, "
                f"{fmt_mb(median(u.rss))} RSS")
    anchor_cpu, anchor_rss = results["node_exporter"]
    ratios = [[label, f"{cpu / anchor_cpu:,.1f}x" if anchor_cpu > 0 else "n/a",
               f"{rss / anchor_rss:,.1f}x"]
              for label, (cpu, rss) in results.items() if label != "node_exporter"]
    section.add(
        f"node_exporter {node.version} with the package's default collectors ({collectors(first)} "
        "ran in its first scrape; no collector flags given) and nitrometer agents on "
        f"{' and '.join(map(str, SIZES))} fake-ioctl instance-store devices (five IO-size "
        "bands each, polled every second through the real ioctl path), all at the same "
        f"time, each scraped once a second for {window} s by the benchmark with "
        "`Accept-Encoding: gzip`. CPU is each process's CPU time over the window in % of "
        "one core (sampled at every 1 s interval); RSS is the resident set, sampled once a "
        "second, as median and maximum. node_exporter reads the whole host (CPU, memory, "
        "disks, filesystems, network...) at each scrape; nitrometer polls its devices every "
        "second whether or not it is scraped and renders their histograms at a scrape.",
        "",
    )
    section.table(["exporter", "CPU (% of one core)", "1 s intervals", "RSS median",
                   "RSS max", "RSS samples", "scrapes", "scrape median", "body (gzip)"], rows)
    section.add("nitrometer against node_exporter, same run and window (CPU: mean over the "
                "window; RSS: median of the samples above):", "")
    section.table(["exporter", "CPU / node_exporter", "RSS / node_exporter"], ratios)
    return section
