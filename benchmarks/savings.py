"""6. The savings model on generated CUR 2.0 Parquet against a bare DuckDB GROUP BY.

Side by side in one run, interleaved (the order alternates each round): `nitrometer savings
--cur FILE -o json` and a bare DuckDB GROUP BY over the same columns of the same file (the
columns the savings query reads: text ones grouped, numbers summed, the product map looked up
for the same key). Each runs in a child process; its peak RSS comes from
getrusage(RUSAGE_CHILDREN) of a fresh intermediate process, so only that one child counts.
The Parquet file is generated once (devkit.synth_cur, with the product map of about
20 keys AWS writes on an EC2 line) and kept in the cache under a name made of its parameters.
"""

from __future__ import annotations

import sys
import time

from benchmarks.common import Context, Section, fmt_mb, measure_command, median

NAME = "savings"
TITLE = "6. Savings model on generated CUR 2.0 Parquet, against a bare DuckDB GROUP BY"
RATIO_TARGET = 2.0
RSS_TARGET = 500 * 2**20
SEED, PRODUCT_KEYS = 1, "aws"

# Runs the command as a child and reports its wall time and peak RSS (ru_maxrss, KiB).

# The bare aggregation: DuckDB's defaults, the same columns, no CUR logic.
BARE = """
import sys, duckdb
from nitrometer.savings import cur_sql
path = sys.argv[1]
con = duckdb.connect()
scan = f"read_parquet('{path}')"
types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
columns = cur_sql.resolve(path, types)
keys, sums = [], []
for canon, column in sorted(columns.items()):
    name = '"' + column.name + '"'
    if column.kind == "map":
        keys.append(f"{name}['{cur_sql.PRODUCT_KEYS[canon][0]}']")
    elif column.kind == "number":
        sums.append(f"sum({name})")
    else:
        keys.append(name)
sql = (f"SELECT {', '.join(keys)}, {', '.join(sums)}, count(*) FROM {scan} "
       f"GROUP BY ALL")
print(len(con.execute(sql).fetchall()))
"""


def cur_file(ctx: Context, lines: int):
    from devkit.synth_cur import write_synthetic_cur

    path = ctx.cache / f"cur2-{lines}-{PRODUCT_KEYS}-seed{SEED}.parquet"
    if not path.exists():
        ctx.log(f"savings: generating {lines:,} CUR lines (kept in {ctx.cache})")
        tmp = path.with_suffix(".tmp")
        write_synthetic_cur(tmp, lines, seed=SEED, product_keys=PRODUCT_KEYS)
        tmp.replace(path)
    return path


def measure(cmd: list[str]) -> dict:
    return measure_command(cmd, timeout=900)


def commands(path) -> dict[str, list[str]]:
    return {
        "nitrometer savings": [sys.executable, "-m", "nitrometer", "savings", "--cur",
                               str(path), "-o", "json", "--no-progress"],
        "bare DuckDB GROUP BY": [sys.executable, "-c", BARE, str(path)],
    }


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    lines, rounds = (200_000, 3) if ctx.quick else (10_000_000, 5)
    path = cur_file(ctx, lines)
    started = time.monotonic()
    runs: dict[str, list[dict]] = {name: [] for name in commands(path)}
    for index in range(rounds):
        order = list(commands(path).items())
        for name, cmd in order if index % 2 == 0 else order[::-1]:
            runs[name].append(measure(cmd))
    ratios = [s["wall"] / b["wall"] for s, b in zip(runs["nitrometer savings"],
                                                   runs["bare DuckDB GROUP BY"])]
    walls = {name: median([r["wall"] for r in results]) for name, results in runs.items()}
    rss = {name: max(r["rss"] for r in results) for name, results in runs.items()}
    ratio = median(ratios)
    ctx.log(f"savings {lines:,}: {walls['nitrometer savings']:.1f} s against "
            f"{walls['bare DuckDB GROUP BY']:.1f} s ({ratio:.2f}x), "
            f"{fmt_mb(rss['nitrometer savings'])} ({time.monotonic() - started:.0f} s)")
    samples = f"{rounds} interleaved rounds"
    label = f"{lines / 1e6:g}M CUR lines"
    section.target(f"savings model against a bare DuckDB GROUP BY, {label}", "<= 2x",
                   f"{ratio:.2f}x median", ratio <= RATIO_TARGET, samples)
    section.target(f"savings model peak RSS, {label}", "< 500 MiB",
                   f"{fmt_mb(rss['nitrometer savings'])} largest",
                   rss["nitrometer savings"] < RSS_TARGET, samples)
    section.add(
        f"`nitrometer savings --cur FILE -o json --no-progress` against a bare DuckDB "
        f"GROUP BY over the same columns of the same file, each in its own process, "
        f"{rounds} rounds, the order alternating. The file: {lines:,} synthetic CUR 2.0 "
        f"lines, snappy Parquet, {path.stat().st_size / 2**20:,.0f} MiB, row groups of "
        "500,000 lines, a `product` map of 27 keys a line as AWS writes an EC2 line "
        "(devkit.synth_cur: EC2 usage of several families, Graviton, Windows, Spot, "
        "RI- and SP-covered lines, fees, unknown types, S3). The bare query groups the text "
        "columns the savings query reads (the product map's key looked up the same way) "
        "and sums its numeric ones, with DuckDB's defaults. Wall times are start-up and "
        "output included; \"ratio\" is the median of the per-round ratios; peak RSS is the "
        "largest of the rounds.",
        "",
    )
    rows = [[name, f"{walls[name]:.2f} s",
             f"{min(r['wall'] for r in runs[name]):.2f} s",
             f"{lines / walls[name] / 1e6:.2f} M lines/s", fmt_mb(rss[name])]
            for name in runs]
    section.table(["run", "wall (median)", "best", "rate", "peak RSS"], rows)
    section.add(f"Ratio savings / bare: {ratio:.2f}x (median of {rounds} rounds; "
                f"per round {', '.join(f'{r:.2f}' for r in ratios)}).")
    return section
