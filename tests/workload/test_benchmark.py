"""The workload benchmark runs and reports its section and target (no timing asserted)."""

from __future__ import annotations

from tests.benchmarks.test_bench_smoke import run_benchmarks


def test_quick_workload_run_reports_the_500_cgroup_tick(tmp_path):
    report = run_benchmarks(tmp_path, "workload")
    assert "\n## 13. Workload collector: io.stat of 500 cgroups per tick\n" in report
    assert "| 500 cgroups, all changed |" in report
    row = next(line for line in report.splitlines()
               if line.startswith("| workload collector tick at 500 cgroups, all changed"))
    assert "| 3 interleaved rounds |" in row
