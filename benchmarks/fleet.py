"""Agents to measure: `nitrometer run` on simulated devices or on fake ioctl devices.

Each agent runs as its own process through benchmarks.agent_probe, which is
`nitrometer run` plus a note of when each tick started (for the jitter figures).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from benchmarks.common import PYTHON, ROOT, peak_rss
from devkit.ports import free_port

SIM_1 = "simulate:i3en.large:steady"  # one instance-store volume


def simulated_spec(devices: int) -> str:
    """i3en.6xlarge has two instance-store volumes; the rest are EBS volumes."""
    if devices == 1:
        return SIM_1
    volumes = ",".join(("gp3", "io2")[i % 2] for i in range(devices - 2))
    return f"simulate:i3en.6xlarge:steady:{volumes}"


class FakeFleet:
    """N instance-store devices (8 KiB pages, five IO-size bands: the largest exposition)
    behind the fake NVMe shim, with the sysfs tree discovery walks."""

    def __init__(self, root: Path, shim: Path, devices: int):
        from devkit.fakedev import MODEL_INSTANCE_STORE, FakeNvme, identify_bytes
        from devkit.fakedev.pages import instance_store_page

        self.sysfs, self.dev = root / "sys", root / "dev"
        self.dev.mkdir(parents=True)
        self.fake = FakeNvme(root / "fake", shim)
        for i in range(1, devices + 1):
            serial = f"AWS{i:017d}"
            ctrl = self.sysfs / "class" / "nvme" / f"nvme{i}"
            (ctrl / f"nvme{i}n1").mkdir(parents=True)
            (ctrl / f"nvme{i}n1" / "nsid").write_text("1\n")
            for attr, value in (("model", MODEL_INSTANCE_STORE), ("serial", serial),
                                ("firmware_rev", "0"), ("state", "live")):
                (ctrl / attr).write_text(value + "\n")
            page = instance_store_page(read_ops=98_765_432 + i, write_ops=45_678_901 + i)
            self.fake.add(str(self.dev / f"nvme{i}n1"), page=page,
                          identify=identify_bytes(serial, MODEL_INSTANCE_STORE))

    def args(self) -> list[str]:
        return ["--source=ioctl", f"--path.sysfs={self.sysfs}", f"--path.dev={self.dev}",
                "--instance.type=i3en.24xlarge"]

    def env(self) -> dict[str, str]:
        return self.fake.env()


class Agent:
    def __init__(self, label: str, args: list[str], workdir: Path, env=None, preexec_fn=None):
        self.label = label
        self.port = free_port()
        self.ticks_file = workdir / f"ticks-{self.port}.json"
        self.log_file = workdir / f"agent-{self.port}.log"
        argv = [PYTHON, "-m", "benchmarks.agent_probe", str(self.ticks_file), *args,
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warning"]
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env or dict(os.environ),
                                         stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=preexec_fn)
        self.ps = psutil.Process(self.proc.pid)

    def scrape(self, timeout: float = 10.0, headers=None) -> tuple[bytes, float]:
        """The /metrics body and the seconds from connecting to the last byte."""
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/metrics", headers=headers or {})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{self.label}: /metrics answered {resp.status}")
        finally:
            conn.close()
        return body, time.perf_counter() - start

    def wait_ready(self, devices: int, timeout: float = 90.0) -> None:
        """Until /metrics shows every device polled at least twice (a delta exists)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited: {self.log()}")
            try:
                body = self.scrape()[0].decode()
                ready = sum(1 for line in body.splitlines()
                            if line.startswith("ec2_nvme_read_ops_total{"))
                ticks = metric(body, "nitrometer_poll_duration_seconds_count")
                if ready >= devices and ticks >= 2:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} not ready in {timeout:.0f} s: {self.log()}")
            time.sleep(0.5)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def peak_rss(self) -> int:
        return peak_rss(self.proc.pid)

    def stop(self) -> list[float]:
        """SIGTERM, wait, and the monotonic start time of every tick."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{self.label} did not stop on SIGTERM") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"{self.label} exited {self.proc.returncode}: {self.log()}")
        return json.loads(self.ticks_file.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_file.read_text()[-1500:]
        except OSError:
            return ""


def metric(body: str, name: str) -> float:
    """The value of an unlabelled sample in an exposition (0 when absent)."""
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
