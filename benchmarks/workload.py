"""The workload collector's cost per tick: io.stat of every workload cgroup read and turned
into per-device deltas, at 50 and 500 cgroups, with and without the tree walk of a rescan.

The tree is a fixture cgroupfs on the local disk (tmpfs-like page cache after the first
round), each io.stat with lines for 8 devices, as on a host with that many volumes.
"""

from __future__ import annotations

from benchmarks.common import Context, Section, fmt_ns, interleaved, median

NAME = "workload"
TITLE = "13. Workload collector: io.stat of 500 cgroups per tick"
DEVICES = 8
TARGET_SECONDS = 0.010  # 1 % of a core at the default 1 s poll


def build_tree(root, count: int, scale: int = 1) -> None:
    from devkit.cgroupfs import CgroupTree

    tree = CgroupTree(root)
    for i in range(count):
        slice_ = "system.slice" if i % 2 else "kubepods.slice/kubepods-burstable.slice"
        name = (f"{slice_}/app{i:04d}.service" if i % 2 else
                f"{slice_}/kubepods-burstable-pod{i:08x}_0000_4000_8000_000000000000.slice/"
                f"cri-containerd-{i:064x}.scope")
        for d in range(DEVICES):
            tree.add(name, f"259:{d}", rios=scale * (i * 10 + d), wios=scale * i,
                     rbytes=scale * i * 40960, wbytes=scale * i * 4096)


def run(ctx: Context) -> Section:
    from nitrometer.collectors.cgroups import CgroupIO

    section = Section(TITLE)
    rounds = 3 if ctx.quick else 15
    loops = 5 if ctx.quick else 20
    devnums = {f"259:{d}" for d in range(DEVICES)}
    candidates = {}
    collectors = {}
    for count in (50, 500):
        # Two trees of the same cgroups with different counters: a collector switched from
        # one to the other each tick finds every io.stat changed, the worst case.
        roots = [ctx.workdir / f"cgroup-{count}-{k}" for k in (1, 2)]
        for k, root in enumerate(roots, start=1):
            build_tree(root, count, k)
        steady = CgroupIO(str(roots[0]), rescan_every=1_000_000)
        changing = CgroupIO(str(roots[0]), rescan_every=1_000_000)
        rescanning = CgroupIO(str(roots[0]), rescan_every=1)
        for io in (steady, changing, rescanning):
            io.tick(devnums)  # the baseline and the first walk
        collectors[count] = changing

        def ticks(n: int, io=steady) -> None:
            for _ in range(n):
                io.tick(devnums)

        def changed(n: int, io=changing, roots=roots) -> None:
            for i in range(n):
                io.root = str(roots[(i + 1) % 2])
                io.tick(devnums)

        def rescans(n: int, io=rescanning) -> None:
            for _ in range(n):
                io.tick(devnums)

        candidates[f"{count} cgroups, all idle"] = (ticks, loops)
        candidates[f"{count} cgroups, all changed"] = (changed, loops)
        candidates[f"{count} cgroups, all idle, with a rescan"] = (rescans, loops)
    times = interleaved(candidates, rounds)
    rows = [[name, fmt_ns(median(t)), fmt_ns(min(t))] for name, t in times.items()]
    section.add(
        f"One tick of the collector: read io.stat of each workload cgroup (one read each), "
        f"parse it, keep the deltas for {DEVICES} watched devices. Medians over {rounds} "
        f"interleaved rounds of {loops} ticks; a rescan walks the tree for cgroups that "
        "came or went (the agent does it every rescan.interval, 30 s by default). An io.stat "
        "the same as at the last tick is not parsed: idle cgroups cost one read.",
        "",
    )
    section.table(["cgroups", "per tick (median)", "per tick (best round)"], rows)
    steady_500 = median(times["500 cgroups, all changed"])
    reads = collectors[500].reads
    section.target("workload collector tick at 500 cgroups, all changed",
                   "< 10 ms (1 % of a core at 1 s)",
                   fmt_ns(steady_500), steady_500 < TARGET_SECONDS,
                   f"{rounds} interleaved rounds", count=rounds, minimum=3)
    ctx.log(f"workload: 500 cgroups {fmt_ns(steady_500)} per tick ({reads} reads)")
    return section
