"""3. The agent at 1 Hz: CPU (% of one core) and RSS with 1, 8 and 32 devices.

All six agents (three sizes, simulated and fake-ioctl devices) run at the same time, so
they share whatever else the machine is doing. Each is measured as a whole service: the
agent and every process it forks (the privileged keeper and reader of the ioctl source).
CPU is counted from after start-up (every device polled twice) to the end of the window,
sampled once a second; RSS is the sum over the processes, sampled once a second, and peak
RSS the sum of their high-water marks (VmHWM), start-up included. A scrape every 15 s is
the lightest Prometheus.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import Context, Section, ServiceUsage, fmt_mb, median
from benchmarks.fleet import GROWTH_SECONDS, Agent, FakeFleet, metric, simulated_spec

NAME = "agent"
TITLE = "3. The agent at 1 Hz: CPU and memory"
SIZES = (1, 8, 32)
SCRAPE_EVERY = 15.0
CPU_TARGET = 1.0  # % of one core at 32 devices
RSS_TARGET = 60 * 2**20


def start_agents(ctx: Context, sizes=SIZES, kinds=("simulated", "fake ioctl"),
                 seconds: int = GROWTH_SECONDS) -> list:
    """(devices, kind, Agent) for each size and kind, every device polled twice; fake
    devices grow for `seconds` polls."""
    from devkit.fakedev import build_shim

    shim = build_shim(ctx.workdir) if "fake ioctl" in kinds else None
    agents = []
    try:
        for n in sizes:
            if "simulated" in kinds:
                agents.append((n, "simulated", Agent(f"simulated x{n}",
                                                     [f"--source={simulated_spec(n)}"],
                                                     ctx.workdir)))
            if "fake ioctl" in kinds:
                # Sections of one run share the work directory: a fleet of its own each.
                root = Path(tempfile.mkdtemp(prefix=f"fleet-{n}-", dir=ctx.workdir))
                fleet = FakeFleet(root, shim, n, seconds)
                agents.append((n, "fake ioctl", Agent(f"fake ioctl x{n}", fleet.args(),
                                                      ctx.workdir, env=fleet.env(),
                                                      fleet=fleet)))
        for n, _, agent in agents:
            agent.wait_ready(n)
    except BaseException:
        for _, _, agent in agents:
            agent.kill()
        raise
    return agents


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    window = 8.0 if ctx.quick else 60.0
    agents = start_agents(ctx)
    try:
        time.sleep(2.0)
        usage = {id(a): ServiceUsage(a.proc.pid, pss=False) for _, _, a in agents}
        start = time.monotonic()
        next_scrape = start + SCRAPE_EVERY
        while True:
            for u in usage.values():
                u.sample()
            if time.monotonic() >= start + window:
                break
            if time.monotonic() >= next_scrape:
                for _, _, a in agents:
                    a.scrape()
                next_scrape += SCRAPE_EVERY
            time.sleep(min(1.0, max(start + window - time.monotonic(), 0)))
        results = []
        for n, kind, a in agents:
            u = usage[id(a)]
            overruns = metric(a.scrape()[0].decode(), "nitrometer_poll_overruns_total")
            results.append((n, kind, u, u.peak_rss(), overruns))
        for _, _, a in agents:
            a.stop()
    finally:
        for _, _, a in agents:
            a.kill()
    rows = [[n, kind, len(u.processes), f"{u.cpu_percent():.2f} %", u.intervals,
             fmt_mb(median(u.rss)), fmt_mb(peak), f"{overruns:.0f}"]
            for n, kind, u, peak, overruns in results]
    for n, kind, u, peak, _ in results:
        ctx.log(f"agent {kind} x{n}: {u.cpu_percent():.2f} % CPU, {fmt_mb(peak)} peak RSS "
                f"over {len(u.processes)} processes")
    section.add(
        f"Six agents side by side for {window:.0f} s after start-up, polling every second. "
        "Simulated devices: an i3en.large (1 instance-store volume), then an i3en.6xlarge "
        "(2) with 6 or 30 EBS volumes. Fake ioctl devices: all instance-store, 8 KiB pages "
        "with five IO-size bands (the heaviest device there is), read through the real "
        "ioctl path from the LD_PRELOAD fake device, each page one second of load past the "
        "last. Every figure is the whole service's: the agent and the processes it forked "
        "(the processes column). CPU is their CPU time over the window, sampled once a "
        "second (the intervals column); RSS is the median of the per-second sums of their "
        "resident sets; peak RSS sums the kernel's high-water mark of each, one reading at "
        "the end that covers start-up too.",
        "",
    )
    section.table(["devices", "source", "processes", "CPU (% of one core)", "1 s intervals",
                   "RSS median", "peak RSS", "overruns"], rows)
    section.add(
        "The simulated runs include the simulator's own work (a workload model stepped "
        "for every device every second), which a real host does not pay; the fake-ioctl "
        "runs are the closer figure for a real host. In the fake-ioctl runs part of the CPU "
        "is the LD_PRELOAD shim answering each ioctl in user space by reading a file; on a "
        "real host that work is the kernel's and the controller's.",
        "",
    )
    for n, kind, u, peak, _ in results:
        if n == 32:
            cpu = u.cpu_percent()
            section.target(f"service CPU, 32 devices ({kind})", "< 1 % of a core",
                           f"{cpu:.2f} %", cpu < CPU_TARGET,
                           f"{u.intervals} one-second intervals")
            count = len(u.processes)
            section.target(f"service peak RSS, 32 devices ({kind})", "< 60 MiB", fmt_mb(peak),
                           peak < RSS_TARGET, f"high-water marks of {count} "
                           + ("process" if count == 1 else "processes"))
    return section
