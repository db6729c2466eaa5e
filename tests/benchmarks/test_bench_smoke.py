"""The benchmark runner end to end, in its quick mode: the report is written, sections and all.

No timing is asserted: figures from a shared machine are not test material.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_core_run_writes_the_report(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only", "core",
                           "--out", str(out), "--cache", str(tmp_path / "cache")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = out.read_text()
    for heading in ("# Benchmarks", "## Machine", "## Targets",
                    "## 1. One device sample: C core, pure Python, nvme-cli JSON"):
        assert f"\n{heading}\n" in f"\n{report}", heading
    assert "| Python | CPython" in report or "| Python | " in report
    assert "C core vs pure Python (instance_store)" in report
    for path in ("C core (native.py)", "pure Python", "nvme-cli JSON + Python"):
        assert f"| instance_store | {path} |" in report
    # Only what was asked for runs.
    assert "## 3." not in report and "## 6." not in report


def test_unknown_benchmark_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "warp-drive",
                           "--out", str(tmp_path / "x.md")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown benchmark warp-drive" in done.stderr
    assert not (tmp_path / "x.md").exists()
