"""The benchmark runner end to end, in its quick mode: the report is written, sections and all.

No timing is asserted: figures from a shared machine are not test material.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import Section

ROOT = Path(__file__).resolve().parents[2]


def run_benchmarks(tmp_path, *names):
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only",
                           ",".join(names), "--out", str(out), "--cache",
                           str(tmp_path / "cache")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out.read_text()


def test_quick_core_run_writes_the_report(tmp_path):
    report = run_benchmarks(tmp_path, "core")
    for heading in ("# Benchmarks", "## Machine", "## Targets",
                    "## 1. One device sample: C core, pure Python, nvme-cli JSON"):
        assert f"\n{heading}\n" in f"\n{report}", heading
    assert "| Python | CPython" in report or "| Python | " in report
    assert "| measurement | target | measured | samples | met |" in report
    # Each target says what it rests on: the quick run's 3 rounds.
    row = next(line for line in report.splitlines()
               if line.startswith("| C core vs pure Python (instance_store)"))
    assert "| 3 interleaved rounds |" in row
    for path in ("C core (native.py)", "pure Python", "nvme-cli JSON + Python"):
        assert f"| instance_store | {path} |" in report
    # Only what was asked for runs, and nothing but the run is in the report.
    assert "## 3." not in report and "## 6." not in report
    assert "Why targets are missed" not in report


def test_a_target_with_too_few_samples_is_not_judged():
    section = Section("x")
    section.target("p99", "< 20 ms", "4.00 ms", True, "12 ticks", count=12, minimum=300)
    section.target("median", "< 25 ms", "9.00 ms", True, "30 scrapes", count=30, minimum=30)
    few, enough = section.targets
    assert few.met is None and "not judged: 12 samples, needs 300" in few.measured
    assert enough.met is True and "not judged" not in enough.measured


@pytest.mark.slow
def test_quick_node_exporter_run_reports_both_exporters_and_ratios(tmp_path):
    report = run_benchmarks(tmp_path, "node_exporter")
    section = report.split("## 8. Beside node_exporter", 1)[1]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines()
            if line.startswith("| node_exporter |") or line.startswith("| nitrometer, ")}
    assert {"node_exporter", "nitrometer, 8 fake-ioctl devices",
            "nitrometer, 32 fake-ioctl devices"} <= set(rows)
    # CPU, intervals, RSS median and max, RSS samples, scrapes: all measured, none empty.
    cells = rows["node_exporter"].strip("| ").split(" | ")
    assert re.fullmatch(r"\d+\.\d\d %", cells[1]) and int(cells[2]) >= 5
    assert cells[3].endswith("MiB") and int(cells[5]) == int(cells[2]) + 1
    assert re.search(r"\| nitrometer, 32 fake-ioctl devices \| [\d.,]+x \| [\d.,]+x \|", section)
    assert re.search(r"default collectors \(\d+ ran", section)


def test_unknown_benchmark_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "warp-drive",
                           "--out", str(tmp_path / "x.md")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown benchmark warp-drive" in done.stderr
    assert not (tmp_path / "x.md").exists()


@pytest.mark.slow
def test_quick_savings_run_sets_the_model_beside_a_bare_group_by(tmp_path):
    report = run_benchmarks(tmp_path, "savings")
    section = report.split("## 6. Savings model on generated CUR 2.0 Parquet", 1)[1]
    for run in ("nitrometer savings", "bare DuckDB GROUP BY"):
        assert re.search(rf"^\| {run} \| [\d.]+ s \| [\d.]+ s \| [\d.]+ M lines/s \| "
                         r"[\d.,]+ MiB \|$", section, re.M), run
    assert re.search(r"Ratio savings / bare: [\d.]+x \(median of 3 rounds; per round "
                     r"[\d.]+, [\d.]+, [\d.]+\)", section)
    assert "| savings model peak RSS, 0.2M CUR lines | < 500 MiB |" in report
    # the generated file is kept under a name made of its parameters
    assert (tmp_path / "cache" / "cur2-200000-aws-seed1.parquet").is_file()


def test_import_times_are_grouped_by_top_level_package():
    from benchmarks.imports import import_times

    # `python -X importtime` writes one line per module once its import ends, children
    # before their parent, nesting shown by two spaces a level
    # (https://docs.python.org/3/using/cmdline.html#cmdoption-X, "importtime").
    stderr = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:       100 |        100 |       _ssl",
        "import time:       300 |        400 |     ssl",
        "import time:        50 |         50 |       http.client",
        "import time:        20 |         70 |     http",
        "import time:        10 |        480 |   prometheus_client",
        "level=info something else on stderr",
        "import time:        30 |        510 | prometheus_client.utils",
        "import time:         7 |          7 | h11",
    ])
    assert import_times(stderr) == {
        "_ssl": (100, 100), "ssl": (300, 400), "http": (70, 70),
        "prometheus_client": (40, 510), "h11": (7, 7)}


@pytest.mark.slow
def test_quick_imports_run_reports_imports_memory_and_what_loads_them(tmp_path):
    report = run_benchmarks(tmp_path, "imports")
    section = report.split("## 14. The agent's imports and memory after start-up", 1)[1]
    assert "| top-level package | cumulative | own | runs |" in section
    assert "| nitrometer |" in section
    assert re.search(r"RSS \d+\.\d MiB \(median of 1 runs\), \d+ threads", section)
    assert "| file or package | allocated |" in section
