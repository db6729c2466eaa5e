"""Live: simulated agents (x86 i3en, Graviton is4gen and im4gn hosts, the simulated host CPU
needing a third less CPU per IO on Graviton) scraped by a real Prometheus in two jobs, and
`nitrometer savings --measured` finding that third in both: where the Graviton host runs at
about the x86 load, and where it runs at about half of it (the raw ratio fails there)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from nitrometer.sim.host import GRAVITON_CPU_SAVING
from tests.dashboards.conftest import start_agent
from tests.support.processes import stop
from tests.support.prometheus import PrometheusServer, free_port

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

# job -> (x86 source, Graviton source); per vCPU the steady IO of is4gen.xlarge at 2/3 the
# CPU per IO matches i3en.xlarge's, and im4gn.xlarge's is about half of it.
JOBS = {"equal-load": ("simulate:i3en.xlarge:steady", "simulate:is4gen.xlarge:steady"),
        "half-load": ("simulate:i3en.xlarge:steady", "simulate:im4gn.xlarge:steady")}
SECONDS_OF_DATA = 15
TRUE_PCT = 100 * GRAVITON_CPU_SAVING


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    agents, scrape_configs = [], []
    try:
        for job, sources in JOBS.items():
            targets = []
            for i, source in enumerate(sources):
                port = free_port()
                agents.append(start_agent(source, port, tmp / f"agent-{job}-{i}.log"))
                targets.append(f"127.0.0.1:{port}")
            scrape_configs.append({"job_name": job, "static_configs": [{"targets": targets}]})
        with PrometheusServer(tmp, scrape_configs=scrape_configs, scrape_interval="1s") as prom:
            prom.wait_for("count(nitrometer_host_cpu_seconds_total) == 4", timeout=30)
            start = time.time()
            prom.wait_for(f"min(count_over_time(nitrometer_host_cpu_seconds_total"
                          f"[5m])) >= {SECONDS_OF_DATA}", timeout=90)
            yield prom, start, start + math.floor(time.time() - start)
    finally:
        for process in agents:
            stop(process)


def test_simulated_fleet_shows_the_gain_at_equal_load(demo):
    prom, start, end = demo
    result = subprocess.run(
        [sys.executable, "-m", "nitrometer", "savings", "--prometheus", prom.url, "--measured",
         "--start", str(start), "--end", str(end), "--min-hours", "0", "-o", "json"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)["measured"]
    assert measured["basis"] == "equal_load"
    groups = {g["labels"]["job"]: g for g in measured["groups"]}
    for job in JOBS:
        assert groups[job]["equal_load"]["nih_reduction_pct"] == pytest.approx(TRUE_PCT, abs=1)
    equal, half = groups["equal-load"], groups["half-load"]
    assert equal["graviton"]["cpu_busy_share"] == pytest.approx(
        equal["x86"]["cpu_busy_share"], rel=0.1)
    assert half["graviton"]["cpu_busy_share"] == pytest.approx(
        0.5 * half["x86"]["cpu_busy_share"], rel=0.1)
    # raw: right when the loads match, and far off (Graviton seeming to need more hours)
    # when the Graviton host idles at half the load
    assert equal["raw"]["nih_reduction_pct"] == pytest.approx(TRUE_PCT, abs=3)
    assert half["raw"]["nih_reduction_pct"] < -25
    assert measured["nih_reduction_pct"] == pytest.approx(TRUE_PCT, abs=1)
