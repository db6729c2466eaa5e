"""3. The agent at 1 Hz: CPU (% of one core) and peak RSS with 1, 8 and 32 devices.

All six agents (three sizes, simulated and fake-ioctl devices) run at the same time, so
they share whatever else the machine is doing. CPU is counted from after start-up (every
device polled twice) to the end of the window, sampled once a second; peak RSS is the
process's high-water mark (VmHWM), start-up included. A scrape every 15 s stands in for Prometheus.
"""

from __future__ import annotations

import time

from benchmarks.common import Context, Section, Usage, fmt_mb
from benchmarks.fleet import Agent, FakeFleet, metric, simulated_spec

NAME = "agent"
TITLE = "3. The agent at 1 Hz: CPU and memory"
SIZES = (1, 8, 32)
SCRAPE_EVERY = 15.0
CPU_TARGET = 1.0  # % of one core at 32 devices
RSS_TARGET = 60 * 2**20


def start_agents(ctx: Context, sizes=SIZES, kinds=("simulated", "fake ioctl")) -> list:
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
                fleet = FakeFleet(ctx.workdir / f"fleet-{n}-{len(agents)}", shim, n)
                agents.append((n, "fake ioctl", Agent(f"fake ioctl x{n}", fleet.args(),
                                                      ctx.workdir, env=fleet.env())))
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
        usage = {id(a): Usage(a.proc.pid) for _, _, a in agents}
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
            results.append((n, kind, u.cpu_percent(), u.intervals, a.peak_rss(), overruns))
        for _, _, a in agents:
            a.stop()
    finally:
        for _, _, a in agents:
            a.kill()
    rows = [[n, kind, f"{cpu:.2f} %", intervals, fmt_mb(rss), f"{overruns:.0f}"]
            for n, kind, cpu, intervals, rss, overruns in results]
    for n, kind, cpu, _, rss, _ in results:
        ctx.log(f"agent {kind} x{n}: {cpu:.2f} % CPU, {fmt_mb(rss)}")
    section.add(
        f"Six agents side by side for {window:.0f} s after start-up, polling every second. "
        "Simulated devices: an i3en.large (1 instance-store volume), then an i3en.6xlarge "
        "(2) with 6 or 30 EBS volumes. Fake ioctl devices: all instance-store, 8 KiB pages "
        "with five IO-size bands (the heaviest device there is), read through the real "
        "ioctl path from the LD_PRELOAD fake device. CPU is the process's CPU time over the "
        "window, sampled once a second (the intervals column); peak RSS is the kernel's "
        "high-water mark for the process, one reading at the end that covers start-up too.",
        "",
    )
    section.table(["devices", "source", "CPU (% of one core)", "1 s intervals", "peak RSS",
                   "overruns"], rows)
    section.add(
        "The simulated runs include the simulator's own work (a workload model stepped "
        "for every device every second), which a real host does not pay; the fake-ioctl "
        "runs are the closer figure for a real host. In the fake-ioctl runs part of the CPU "
        "is the LD_PRELOAD shim answering each ioctl in user space by reading a file; on a "
        "real host that work is the kernel's and the controller's.",
        "",
    )
    for n, kind, cpu, intervals, rss, _ in results:
        if n == 32:
            section.target(f"agent CPU, 32 devices ({kind})", "< 1 % of a core",
                           f"{cpu:.2f} %", cpu < CPU_TARGET, f"{intervals} one-second intervals")
            section.target(f"agent peak RSS, 32 devices ({kind})", "< 60 MB", fmt_mb(rss),
                           rss < RSS_TARGET, "1 high-water mark")
    return section
