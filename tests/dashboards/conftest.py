"""A demo fleet for the live tests: two simulated agents (x86 and Graviton) and a real
Prometheus on 127.0.0.1 scraping them every second with the generated rules loaded. The
agents export their own limit gauges (the simulated volumes' and the instance types')."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from nitrometer.dashboards import cli
from tests.support.processes import stop
from tests.support.prometheus import PrometheusServer, free_port

JOB = "nitrometer"
AGENTS = {"x86": "simulate:i3en.xlarge:mixed:gp3", "graviton": "simulate:im4gn.xlarge:mixed:gp3"}
SECONDS_OF_DATA = 12


@dataclass
class Fleet:
    prom: PrometheusServer
    started: float  # when Prometheus began scraping
    targets: dict[str, str]  # AGENTS key -> host:port


def start_agent(source: str, port: int, log: Path) -> subprocess.Popen:
    return start_agent_process(
        [sys.executable, "-m", "nitrometer", "run", "--source", source,
         "--web.listen-address", f"127.0.0.1:{port}", "--poll.interval", "1s"], port, log)


def start_agent_process(argv: list[str], port: int, log: Path, env=None) -> subprocess.Popen:
    """Starts an agent and waits until it serves /metrics on 127.0.0.1:port."""
    process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    source = " ".join(argv[3:])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"agent {source} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"agent {source} did not serve /metrics: {log.read_text()[-2000:]}")


@pytest.fixture(scope="package")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    rule_files = []
    for relative, text in cli.render().items():
        if relative.startswith("rules/"):
            path = tmp / Path(relative).name
            path.write_text(text)
            rule_files.append(path)
    agents, targets = [], {}
    try:
        for name, source in AGENTS.items():
            port = free_port()
            agents.append(start_agent(source, port, tmp / f"agent-{name}.log"))
            targets[name] = f"127.0.0.1:{port}"
        with PrometheusServer(
                tmp, scrape_interval="1s", rule_files=rule_files, scrape_configs=[
                    {"job_name": JOB, "static_configs": [{"targets": list(targets.values())}]},
                ]) as prom:
            started = time.time()
            prom.wait_for(f"count(up == 1) == {len(targets)}", timeout=30)
            # Enough seconds that rates, increases and recorded series all have data.
            prom.wait_for(f"min(count_over_time(up[5m])) >= {SECONDS_OF_DATA}", timeout=60)
            yield Fleet(prom, started, targets)
    finally:
        for process in agents:
            stop(process)
