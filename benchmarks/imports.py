"""14. What the running agent imports, and where its memory goes after start-up.

The agent runs on fake instance-store devices (32; 4 in --quick) under
devkit/agent_imports.py, which is `nitrometer run` plus a report on SIGUSR1: each heavy
import with the nitrometer line behind it, every module loaded, VmRSS. The report is asked
for once every device has been polled twice and /metrics was scraped once plain, once
gzip, once OpenMetrics. Import times come from `python -X importtime` in the same runs
(the median over the runs, per top-level package); memory by file from one more run
under `-X tracemalloc`, which slows and grows the process, so its RSS is not the one given.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import sysconfig
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import PYTHON, ROOT, Context, Section, fmt_mb, median
from benchmarks.fleet import Agent, FakeFleet
from devkit.agent_imports import HEAVY_MODULES
from devkit.imds import FakeImds

NAME = "imports"
TITLE = "14. The agent's imports and memory after start-up"
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
TOP_PACKAGES = 15
TOP_FILES = 15
STDLIB = Path(sysconfig.get_paths()["stdlib"])
TRACE_FRAMES = 40  # deep enough to reach the import statement behind unmarshalled code
# The agent's one identity query is answered as on EC2.
IMDS_DOCUMENT = {"instanceId": "i-0123456789abcdef0", "instanceType": "i3en.24xlarge",
                 "architecture": "x86_64", "region": "us-east-1",
                 "availabilityZone": "us-east-1a"}


class ProbedAgent(Agent):
    """`python [-X ...] -m devkit.agent_imports REPORT ARGS`: stderr kept apart."""

    def __init__(self, label: str, args: list[str], workdir: Path, env, xoptions: list[str]):
        from devkit.ports import free_port

        self.label = label
        self.port = free_port()
        self.report_file = workdir / f"imports-{self.port}.json"
        self.log_file = workdir / f"agent-{self.port}.log"
        argv = [PYTHON, *(f for x in xoptions for f in ("-X", x)), "-m",
                "devkit.agent_imports", str(self.report_file), *args,
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warning"]
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                         stderr=log)

    def report(self, timeout: float = 300.0) -> dict:
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not self.report_file.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.label}: no report: {self.log()}")
            time.sleep(0.05)
        return json.loads(self.report_file.read_text())

    def threads(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        return 0

    def switches(self) -> int:
        """Context switches of every thread so far: each is a thread put to sleep or woken."""
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
            except (OSError, ValueError):
                pass  # a thread that just ended
        return total

    def stop_quietly(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.log_file.read_text(errors="replace")


def import_times(stderr: str) -> dict[str, tuple[int, int]]:
    """Top-level package -> (self us, cumulative us). Cumulative counts each outermost
    import of the package (one no other module of the same package is importing), so it
    includes what the package was first to load; self times add up to the whole."""
    lines = [(len(m.group(3)) // 2, m.group(4).split(".")[0], int(m.group(1)),
              int(m.group(2))) for m in map(IMPORT_LINE.match, stderr.splitlines()) if m]
    own: dict[str, int] = defaultdict(int)
    cumulative: dict[str, int] = defaultdict(int)
    stack: list[tuple[int, str]] = []
    for depth, package, self_us, cum_us in reversed(lines):  # a parent comes first here
        while stack and stack[-1][0] >= depth:
            stack.pop()
        own[package] += self_us
        if all(p != package for _, p in stack):
            cumulative[package] += cum_us
        stack.append((depth, package))
    return {p: (own[p], cumulative[p]) for p in own}


def file_group(filename: str) -> str:
    """Where an allocation's file belongs: a nitrometer file, a third-party package, a
    top-level module or package of the standard library, or the interpreter's own."""
    if filename.startswith("<"):
        return "interpreter (frozen modules)"
    path = Path(filename)
    parts = path.parts
    if "nitrometer" in parts and "site-packages" not in parts:
        return "nitrometer/" + "/".join(parts[parts.index("nitrometer") + 1:])
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    try:
        inside = path.relative_to(STDLIB).parts
    except ValueError:
        return filename
    return "stdlib " + (inside[0] if len(inside) > 1 else path.stem)


def one_run(ctx: Context, fleet: FakeFleet, devices: int, xoptions: list[str],
            label: str, imds: FakeImds) -> tuple[dict, str, int]:
    env = fleet.env()
    env.pop("AWS_EC2_METADATA_DISABLED", None)
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.url
    agent = ProbedAgent(label, fleet.args(), ctx.workdir, env, xoptions)
    try:
        agent.wait_ready(devices)
        agent.scrape()
        agent.scrape(headers={"Accept-Encoding": "gzip"})
        agent.scrape(headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        report = agent.report()
        threads = agent.threads()
    finally:
        log = agent.stop_quietly()
    return report, log, threads


def wakeups(ctx: Context, shim, devices: int, imds: FakeImds) -> list[list]:
    """The poller and a thread per device side by side: threads, and context switches of
    the agent's threads per tick over the same window."""
    from benchmarks.fleet import metric
    from devkit.agent_imports import READS_VARIABLE

    window = 4.0 if ctx.quick else 30.0
    agents, fleets = {}, {}  # a fleet's files go with it: keep each until its agent stops
    try:
        for reads in ("polled", "threaded"):
            fleet = fleets[reads] = FakeFleet(ctx.workdir / f"wakeups-{reads}", shim, devices)
            env = fleet.env()
            env.update({"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, READS_VARIABLE: reads})
            env.pop("AWS_EC2_METADATA_DISABLED", None)
            agents[reads] = ProbedAgent(reads, fleet.args(), ctx.workdir, env, [])
        for agent in agents.values():
            agent.wait_ready(devices)
        before = {r: (a.switches(), metric(a.scrape()[0].decode(),
                                           "nitrometer_poll_duration_seconds_count"))
                  for r, a in agents.items()}
        time.sleep(window)
        rows = []
        for reads, agent in agents.items():
            switches = agent.switches() - before[reads][0]
            ticks = metric(agent.scrape()[0].decode(),
                           "nitrometer_poll_duration_seconds_count") - before[reads][1]
            rows.append([reads, agent.threads(), f"{switches / max(ticks, 1):.0f}",
                         f"{ticks:.0f} ticks"])
    finally:
        for agent in agents.values():
            agent.stop_quietly()
    return rows


def run(ctx: Context) -> Section:
    from devkit.fakedev import build_shim

    section = Section(TITLE)
    devices = 4 if ctx.quick else 32
    runs = 1 if ctx.quick else 5
    shim = build_shim(ctx.workdir)
    fleet = FakeFleet(ctx.workdir / "imports-fleet", shim, devices)
    imds = FakeImds(IMDS_DOCUMENT)
    times: dict[str, list[tuple[int, int]]] = defaultdict(list)
    rss, threads, totals, heavy = [], [], [], []
    for i in range(runs):
        ctx.log(f"imports: run {i + 1}/{runs} under -X importtime")
        report, log, count = one_run(ctx, fleet, devices, ["importtime"], f"importtime {i}",
                                     imds)
        packages = import_times(log)
        for package, pair in packages.items():
            times[package].append(pair)
        totals.append(sum(own for own, _ in packages.values()))
        rss.append(report["rss_kib"] * 1024)
        threads.append(count)
        heavy = [(noted["module"], noted["by"]) for noted in report["imports"]]
    ctx.log("imports: one run under -X tracemalloc")
    traced, _log, _count = one_run(ctx, fleet, devices, [f"tracemalloc={TRACE_FRAMES}"],
                                   "tracemalloc", imds)
    ctx.log("imports: wakeups, the poller beside a thread per device")
    try:
        switches = wakeups(ctx, shim, devices, imds)
    finally:
        imds.close()

    total_us = median(totals)
    rows = sorted(((p, median([c for _, c in v]), median([o for o, _ in v]), len(v))
                   for p, v in times.items()), key=lambda row: -row[1])
    section.add(__doc__.split("\n", 2)[2].strip(), "",
                f"Command: `python -X importtime -m devkit.agent_imports REPORT --source=ioctl "
                f"...` on {devices} fake devices, {runs} run(s); "
                f"`python -X tracemalloc={TRACE_FRAMES} -m devkit.agent_imports ...`, 1 run. "
                f"{sys.implementation.name} {sys.version.split()[0]}.", "",
                f"After start-up: RSS {fmt_mb(median(rss))} (median of {len(rss)} runs), "
                f"{median(threads):.0f} threads, {total_us / 1000:.1f} ms of imports in all.",
                "")
    section.table(["top-level package", "cumulative", "own", "runs"],
                  [[p, f"{c / 1000:.1f} ms", f"{o / 1000:.1f} ms", n]
                   for p, c, o, n in rows[:TOP_PACKAGES]])

    groups: dict[str, int] = defaultdict(int)
    for filename, size, _count in traced["by_file"]:
        groups[file_group(filename)] += size
    section.add(f"Python's allocations after start-up (tracemalloc, 1 run): "
                f"{fmt_mb(traced.get('traced', 0))} in all; the largest by file or package (a "
                "module's code counts to the file that imported it):", "")
    section.table(["file or package", "allocated"], [[name, fmt_mb(size)] for name, size in sorted(
        groups.items(), key=lambda kv: -kv[1])[:TOP_FILES]])

    section.add(f"Reading the devices ({devices}): the poller (one request per device sent "
                "at once, the replies taken by one thread) beside a worker thread per device, "
                "run side by side; context switches of all the agent's threads (voluntary "
                "and not, /proc/PID/task/*/status) per tick, the reader's not counted:", "")
    section.table(["reads", "agent threads", "context switches per tick", "samples"],
                  switches)
    if heavy:
        section.add("Heavy modules still loaded, and the line that loads them:", "")
        by_line: dict[str, set[str]] = defaultdict(set)
        for module, line in heavy:
            by_line[line].add(module if module in HEAVY_MODULES else module.split(".")[0])
        section.table(["loaded by", "modules (top-level packages)"],
                      [[line, ", ".join(sorted(ms))] for line, ms in sorted(by_line.items())])
    else:
        section.add("No heavy module (ssl, hashlib, http.client, http.server, email, "
                    "urllib.request, urllib3, requests, prometheus_client, yaml, psutil, "
                    "bcrypt) is loaded.", "")
    return section
