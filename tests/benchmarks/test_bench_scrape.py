"""The scrape benchmark in its quick mode: node_exporter and the agents side by side, the
samples counted, the render taken apart. No timing is asserted."""

from __future__ import annotations

import re

import pytest

from tests.benchmarks.test_bench_smoke import run_benchmarks


@pytest.mark.slow
def test_quick_scrape_run_sets_the_agents_beside_node_exporter(tmp_path):
    report = run_benchmarks(tmp_path, "scrape")
    section = report.split("## 4. Scrape latency and size of /metrics", 1)[1]
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ")
            for line in section.splitlines()
            if line.startswith("| node_exporter |") or line.startswith("| nitrometer, ")}
    assert set(rows) == {"node_exporter", "nitrometer, 8 fake-ioctl devices",
                         "nitrometer, 32 fake-ioctl devices"}
    agent = rows["nitrometer, 32 fake-ioctl devices"]
    # Scrapes, median, ratio; the format Prometheus's Accept header got; the sample count.
    assert int(agent[1]) >= 5 and re.fullmatch(r"[\d.]+ ms", agent[2])
    assert re.fullmatch(r"[\d.]+x", agent[5]) and agent[6] == "application/openmetrics-text"
    assert 3000 < int(agent[9].replace(",", "")) < 4000
    assert "| samples per scrape at 32 devices | < 4,000 |" in report
    for pages in ("moving", "standing"):
        assert re.search(rf"^\| {pages} \| 10 \| [\d.]+ ms \|", section, re.M), pages
