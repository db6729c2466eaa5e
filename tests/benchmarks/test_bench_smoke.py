"""The benchmark runner end to end, in its quick mode: the report is written, sections and all.

No timing is asserted: figures from a shared machine are not test material.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import Section

ROOT = Path(__file__).resolve().parents[2]


def run_benchmarks(tmp_path, *names, env=None):
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only",
                           ",".join(names), "--out", str(out), "--cache",
                           str(tmp_path / "cache")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
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


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_rows(section: str, first: str) -> dict[str, list[str]]:
    """The rows of a section's tables whose first cell starts with `first`, by that cell."""
    return {cells(line)[0]: cells(line) for line in section.splitlines()
            if line.startswith(f"| {first}")}


@pytest.mark.slow
def test_quick_node_exporter_run_compares_the_whole_service(tmp_path):
    report = run_benchmarks(tmp_path, "node_exporter")
    section = report.split("## 8. Beside node_exporter", 1)[1]
    assert re.search(r"default collectors \(\d+ ran", section)
    # Scraped as Prometheus 2.x does; each exporter answered in a format it offered.
    assert "`application/openmetrics-text;version=1.0.0,application/openmetrics-text;" in section
    served = re.search(r"They served: node_exporter (.+?); nitrometer (.+?)\.\n", section)
    assert served and all(t.startswith(("text/plain", "application/openmetrics-text"))
                          and t.endswith("(gzip)") for t in served.groups())
    rows = table_rows(section, "")
    rss = rows["RSS of the service, median (max)"]
    assert re.fullmatch(r"[\d.]+ MiB \([\d.]+ MiB\)", rss[1]) and rss[2].endswith("MiB)")
    assert re.fullmatch(r"[\d.]+x", rss[3]) and re.fullmatch(r"\d+ one-second samples each", rss[4])
    cpu = rows["CPU over the window (CPU seconds)"]
    assert all(re.fullmatch(r"[\d.]+ % \([\d.]+ s\)", c) for c in cpu[1:3])
    assert rows["scrapes served"][1:3] == ["8 of 8", "8 of 8"]
    samples = int(rows["samples per scrape, median (max)"][1].split()[0].replace(",", ""))
    assert samples > 1000  # 32 devices' histograms, not an empty exposition
    # Every process of the service has its row: the agent and what it forked.
    processes = [c for c in (cells(line) for line in section.splitlines())
                 if c[0] == "nitrometer" and c[2].isdigit()]
    assert processes and "(agent)" in processes[0][1]
    assert len(processes) >= 2 and all("of the agent" in c[1] for c in processes[1:])
    # The agent's own metrics: every device grew, no device failed.
    polled = re.search(r"each device's `ec2_nvme_read_ops_total` grew by (\d+) to (\d+) "
                       r"seconds of load .* with (\d+) device errors", section)
    assert polled and int(polled[1]) >= 1 and polled[3] == "0"
    # Eight seconds are too few to judge the ratios; the counts are given all the same.
    for what in ("service RSS / node_exporter", "service CPU / node_exporter",
                 "median scrape / node_exporter"):
        row = next(line for line in report.splitlines() if line.startswith(f"| {what}"))
        assert "not judged: 8 samples, needs 60" in row and row.endswith("| not judged |")
    row = next(line for line in report.splitlines()
               if line.startswith("| samples per scrape, 32 devices"))
    assert row.endswith(("| yes |", "| **no** |")) and "| 8 scrapes |" in row


@pytest.mark.slow
def test_quick_agent_run_measures_each_agent_as_a_whole_service(tmp_path):
    report = run_benchmarks(tmp_path, "agent")
    section = report.split("## 3. The agent at 1 Hz", 1)[1]
    rows = [cells(line) for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
    assert {(r[0], r[1]) for r in rows} == {(n, kind) for n in ("1", "8", "32")
                                            for kind in ("simulated", "fake ioctl")}
    for _, kind, processes, cpu, intervals, rss, peak, overruns in rows:
        # The ioctl source reads through privileged processes the agent forks.
        assert int(processes) >= (2 if kind == "fake ioctl" else 1)
        assert re.fullmatch(r"[\d.]+ %", cpu) and int(intervals) >= 5
        assert float(peak.split()[0]) >= float(rss.split()[0]) > 0 and overruns.isdigit()
    assert re.search(r"\| service peak RSS, 32 devices \(fake ioctl\) \| < 60 MiB \| [\d.]+ MiB "
                     r"\| high-water marks of \d+ processes \|", report)


def test_poll_without_an_nvme_cli_that_has_amzn_stats_is_not_measured(tmp_path):
    # An nvme-cli older than 2.12: its amzn plugin has id-ctrl but not stats
    # (nvme-cli plugins/amzn/amzn-nvme.h), so there is nothing real to compare against.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nvme = bin_dir / "nvme"
    nvme.write_text("#!/bin/sh\n"
                    'if [ "$1" = version ]; then echo "nvme version 2.4"; exit 0; fi\n'
                    'if [ "$1 $2" = "amzn help" ]; then\n'
                    '  echo "The following are all implemented sub-commands:"\n'
                    '  echo "  id-ctrl         Send NVMe Identify Controller"; exit 0\n'
                    "fi\n"
                    "exit 1\n")
    nvme.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    report = run_benchmarks(tmp_path, "poll", env=env)
    section = report.split("## 2. One poll per device", 1)[1]
    assert "Not measured: no `nvme` with the amzn plugin" in section
    assert "| device |" not in section and "subprocess / ioctl" not in section


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
