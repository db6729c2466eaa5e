"""A real Prometheus scraping `nitrometer run` on simulated devices every second.

The over-limit scenario (the EC2 guide's first): an i3en.xlarge whose writes exceed the
instance IOPS limit, writes in the 1-2 ms bins, reads under 50 us, the exceeded counter
advancing ~34 s in 40 s.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.agent.conftest import promtool_check
from tests.support.prometheus import PrometheusServer, free_port

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]
RUN_SECONDS = 20
WINDOW = "10s"


def start_agent(port, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", f"--web.listen-address=127.0.0.1:{port}",
         "--source=simulate:i3en.xlarge:over-limit:gp3", "--poll.interval=1s", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def scrape(port) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def value(prom, expr) -> float:
    result = prom.query(expr)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def test_prometheus_sees_what_the_scenario_produced(tmp_path):
    port = free_port()
    agent = start_agent(port)
    try:
        scrape(port)
        with PrometheusServer(tmp_path, targets=[f"127.0.0.1:{port}"]) as prom:
            prom.wait_for(f'count_over_time(up{{job="nitrometer"}}[1m]) >= {RUN_SECONDS}',
                          timeout=RUN_SECONDS + 30)
            store = 'kind="instance_store"'
            # The agent's own 1 s view, for comparison with what Prometheus computed.
            live = scrape(port)
            assert promtool_check(live) == ""

            read_rate = value(prom, f"rate(ec2_nvme_read_ops_total{{{store}}}[{WINDOW}])")
            write_rate = value(prom, f"rate(ec2_nvme_write_ops_total{{{store}}}[{WINDOW}])")
            peak_write = value(prom, f'ec2_nvme_peak_iops{{{store},op="write"}}')
            # rate() over 10 s of a steady overload: within the 1 s peak, not far below it.
            assert 0.7 * peak_write <= write_rate <= peak_write * 1.001
            assert read_rate > 0

            def quantile(q, selector, by="le"):
                return value(prom, f"histogram_quantile({q}, sum by ({by}) "
                                   f"(rate(ec2_nvme_latency_seconds_bucket{{{selector}}}"
                                   f"[{WINDOW}])))")

            # Writes queue into the 1-2 ms bins, exported in the coarse 1.024-4.096 ms bucket;
            # reads stay under 64 us (a bucket edge in both layouts).
            assert 0.001 <= quantile(0.5, f'{store},op="write"') <= 0.004096
            assert quantile(0.99, f'{store},op="read"') < 64e-6
            mean_write = value(prom, f"rate(ec2_nvme_latency_seconds_sum{{{store},op=\"write\"}}"
                                     f"[{WINDOW}]) / rate(ec2_nvme_latency_seconds_count"
                                     f"{{{store},op=\"write\"}}[{WINDOW}])")
            assert 0.001 <= mean_write <= 0.002048

            bands = prom.query(f"histogram_quantile(0.5, sum by (le, io_size) (rate("
                               f"ec2_nvme_io_size_latency_seconds_bucket{{{store},op=\"write\"}}"
                               f"[{WINDOW}])))")
            finite = [float(b["value"][1]) for b in bands if b["value"][1] != "NaN"]
            assert len(bands) == 5 and finite
            assert all(0.001 <= v <= 0.008192 for v in finite)  # the 1-8 ms band bucket

            # ~34 s exceeded in 40 s: 0.85 s per second, allow 0.7-0.95.
            exceeded = value(prom, "rate(ec2_nvme_performance_exceeded_seconds_total"
                                   f'{{{store},scope="instance",limit="iops"}}[{WINDOW}])')
            assert 0.7 <= exceeded <= 0.95
            assert value(prom, f"rate(ec2_nvme_exceeded_intervals_total{{{store}}}"
                               f"[{WINDOW}])") > 0.7
            # No counter went backwards at any point.
            for name in ("read_ops_total", "write_bytes_total", "write_time_seconds_total",
                         "performance_exceeded_seconds_total", "latency_seconds_bucket",
                         "io_size_latency_seconds_bucket"):
                assert value(prom, f"sum(resets(ec2_nvme_{name}[1m]))") == 0, name
            assert value(prom, 'count(ec2_nvme_latency_seconds_count{kind="ebs"})') == 2
            assert value(prom, "ec2_instance_price_usd_per_hour") > 0
    finally:
        agent.send_signal(signal.SIGTERM)
        out = agent.communicate(timeout=10)[0].decode()
    assert agent.returncode == 0, out
    assert "stopping" in out


def test_systemd_notify_reload_and_stop(tmp_path):
    import socket

    sock_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(sock_path)
    listener.settimeout(30)
    config = tmp_path / "nitrometer.yml"
    config.write_text("peaks.window: 60s\n")
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000")
    agent = subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", f"--web.listen-address=127.0.0.1:{port}",
         "--source=simulate:i3en.xlarge", f"--config.file={config}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        messages = []

        def expect(message):
            while message not in messages:
                messages.append(listener.recv(256).decode())

        expect("READY=1")
        expect("WATCHDOG=1")
        assert "over the last 60s" in scrape(port)
        config.write_text("peaks.window: 5s\n")
        messages.clear()  # wait for the READY=1 that follows this reload, not the first one
        agent.send_signal(signal.SIGHUP)
        expect("RELOADING=1")
        expect("READY=1")
        assert "over the last 5s" in scrape(port)
        config.write_text("peaks.window: never\n")
        agent.send_signal(signal.SIGHUP)  # a bad reload keeps the running config
        messages.clear()
        expect("READY=1")
        assert "over the last 5s" in scrape(port)
        agent.send_signal(signal.SIGTERM)
        expect("STOPPING=1")
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
        out = agent.communicate(timeout=10)[0].decode()
        listener.close()
    assert agent.returncode == 0, out
    assert "reload failed, keeping the running config: peaks.window" in out


def test_bad_flag_is_one_line_and_exit_2():
    done = subprocess.run([sys.executable, "-m", "nitrometer", "run", "--poll.interval=0.5"],
                          capture_output=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "at least 1s" in lines[0]
