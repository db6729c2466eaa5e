"""6. The savings model on generated CUR 2.0 Parquet: seconds and peak RSS.

`nitrometer savings --cur FILE -o json` runs in a child process; its peak RSS comes from
getrusage(RUSAGE_CHILDREN) of a fresh intermediate process, so only that one child counts.
The Parquet files are generated once (tests.support.synth_cur) and kept in the cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from benchmarks.common import ROOT, Context, Section, fmt_mb, median

NAME = "savings"
TITLE = "6. Savings model on generated CUR 2.0 Parquet"
SECONDS_TARGET = 60.0
RSS_TARGET = 2 * 2**30

# Runs the command as a child and reports its wall time and peak RSS (ru_maxrss, KiB).
MEASURE = """
import json, resource, subprocess, sys, time
start = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.monotonic() - start
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rc": done.returncode, "wall": wall, "rss": rss,
                  "err": done.stderr[-1500:], "out_len": len(done.stdout)}))
"""


def cur_file(ctx: Context, lines: int):
    from tests.support.synth_cur import write_synthetic_cur

    path = ctx.cache / f"cur2-{lines}.parquet"
    if not path.exists():
        ctx.log(f"savings: generating {lines:,} CUR lines (kept in {ctx.cache})")
        tmp = path.with_suffix(".tmp")
        write_synthetic_cur(tmp, lines, seed=1)
        tmp.replace(path)
    return path


def measure(path) -> dict:
    cmd = [sys.executable, "-m", "nitrometer", "savings", "--cur", str(path), "-o", "json",
           "--no-progress"]
    done = subprocess.run([sys.executable, "-c", MEASURE, *cmd], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"nitrometer savings failed: {result['err']}")
    return result


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    sizes = ((20_000, 2), (200_000, 1)) if ctx.quick else ((1_000_000, 3), (10_000_000, 2))
    rows = []
    for lines, repeats in sizes:
        path = cur_file(ctx, lines)
        started = time.monotonic()
        runs = [measure(path) for _ in range(repeats)]
        wall = median([r["wall"] for r in runs])
        rss = max(r["rss"] for r in runs)
        rows.append([f"{lines:,}", f"{path.stat().st_size / 2**20:,.0f} MiB", repeats,
                     f"{wall:.1f} s", f"{lines / wall / 1e6:.2f} M lines/s", fmt_mb(rss)])
        ctx.log(f"savings {lines:,}: {wall:.1f} s, {fmt_mb(rss)} "
                f"({time.monotonic() - started:.0f} s)")
        if lines == 10_000_000:
            runs_text = f"{repeats} runs"
            section.target("savings model, 10M CUR lines", "< 60 s", f"{wall:.1f} s median",
                           wall < SECONDS_TARGET, runs_text)
            section.target("savings model peak RSS, 10M CUR lines", "< 2 GB",
                           f"{fmt_mb(rss)} largest", rss < RSS_TARGET, runs_text)
    section.add(
        "`nitrometer savings --cur FILE -o json --no-progress` on a snappy Parquet file of "
        "synthetic CUR 2.0 lines (tests.support.synth_cur: EC2 usage of several families, "
        "Graviton, Windows, Spot, RI- and SP-covered lines, unknown types, S3). Wall time "
        "is the median of the runs, start-up and report included; peak RSS the largest.",
        "",
    )
    section.table(["lines", "file", "runs", "wall (median)", "rate", "peak RSS"], rows)
    return section
