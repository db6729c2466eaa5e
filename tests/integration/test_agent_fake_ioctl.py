"""The agent on fake NVMe devices through the real ioctl path, scraped by a real Prometheus.

One device fails mid-run (EIO, then a hang) and recovers; one wraps its u32 bins; one
restarts its counters. None of it may stall the others or put a decrease into a counter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devkit.fakedev import FakeNvme
from devkit.fakedev.pages import ebs_page, instance_store_page
from nitrometer import metrics as m
from tests.support.ec2_mixed import DATA_EBS, ROOT_EBS, plug_ec2_mixed
from tests.support.prometheus import PrometheusServer, free_port

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]
SYSFS = Path(__file__).resolve().parent.parent / "sysfs" / "ec2-mixed"
WRAPPING_START = 2**32 - 40_000  # bins of the wrapping device pass 2^32 within seconds


class Feeder(threading.Thread):
    """Moves the fake devices' counters on four times a second, as real devices would."""

    def __init__(self, fake: FakeNvme, dev: Path):
        super().__init__(daemon=True)
        self.fake, self.dev = fake, dev
        self.stop = threading.Event()
        self.reset_at = time.monotonic() + 8

    def run(self):
        start = time.monotonic()
        while not self.stop.wait(0.25):
            t = time.monotonic() - start
            grow = int(t * 20_000)
            self.fake.set_page(f"{self.dev}/nvme0n1", ebs_page(WRAPPING_START + grow, 9_000 + grow))
            self.fake.set_page(f"{self.dev}/nvme1n1",
                               instance_store_page(100_000_000 + 4 * grow, 50_000_000 + grow))
            base = 5_000_000 if time.monotonic() < self.reset_at else 100  # counters restart
            self.fake.set_page(f"{self.dev}/nvme2n1", ebs_page(base + grow, base + grow))


def value(result) -> float:
    return float(result[0]["value"][1]) if result else float("nan")


def test_failing_device_drops_out_and_returns_while_others_keep_cadence(tmp_path, fake):
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    shutil.copytree(SYSFS, sysfs)
    dev.mkdir()
    plug_ec2_mixed(fake, dev, pages={ROOT_EBS: ebs_page(WRAPPING_START, 9_000),
                                     DATA_EBS: ebs_page(5_000_000, 5_000_000)})
    feeder = Feeder(fake, dev)
    feeder.start()
    port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", "--source", "ioctl",
         "--path.sysfs", str(sysfs), "--path.dev", str(dev),
         "--web.listen-address", f"127.0.0.1:{port}", "--instance.type", "i3en.xlarge"],
        env=fake.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with PrometheusServer(tmp_path, targets=[f"127.0.0.1:{port}"]) as prom:
            up = f'{m.DEVICE_UP}{{device="nvme1n1"}}'
            prom.wait_for(f"{up} == 1", timeout=30)
            time.sleep(3)
            fake.fail(f"{dev}/nvme1n1", "errno=EIO")
            failed_at = time.time()
            prom.wait_for(f"{up} == 0", timeout=20)
            errors = prom.wait_for(f'{m.DEVICE_ERRORS}{{device="nvme1n1", reason="io"}} > 0')
            assert value(errors) >= 1
            time.sleep(3)
            # The others kept their 1 s cadence while nvme1n1 failed: ~1 new sample a second.
            for device in ("nvme0n1", "nvme2n1"):
                polled = prom.query(f'changes({m.READ_OPS}{{device="{device}"}}[4s])')
                assert value(polled) >= 2, device
            fake.fail(f"{dev}/nvme1n1", "")
            prom.wait_for(f"{up} == 1", timeout=30)
            assert time.time() - failed_at < 60

            # A device that hangs in the ioctl must not hold up the others' ticks either.
            overruns_before = value(prom.query(m.POLL_OVERRUNS))
            fake.fail(f"{dev}/nvme1n1", "hang=3000")
            prom.wait_for(f'{m.DEVICE_ERRORS}{{device="nvme1n1", reason="timeout"}} > 0')
            time.sleep(5)
            for device in ("nvme0n1", "nvme2n1"):
                polled = prom.query(f'changes({m.READ_OPS}{{device="{device}"}}[5s])')
                assert value(polled) >= 3, device
            assert value(prom.query(m.POLL_OVERRUNS)) == overruns_before
            fake.fail(f"{dev}/nvme1n1", "")
            prom.wait_for(f"{up} == 1", timeout=40)
            time.sleep(2)

            assert time.monotonic() > feeder.reset_at  # the restart happened during the run
            for series in (m.READ_OPS, m.WRITE_OPS, m.READ_TIME, f"{m.LATENCY}_bucket",
                           f"{m.LATENCY}_count"):
                resets = prom.query(f"max(resets({series}[5m]))")
                assert value(resets) == 0, series
                lowest = prom.query(f"min(min_over_time(rate({series}[3s])[5m:1s]))")
                assert value(lowest) >= 0, series
            wrapped = prom.query(f'{m.READ_OPS}{{device="nvme0n1"}}')
            assert value(wrapped) > 0
            restarts = prom.query(f'{m.COUNTER_RESETS}{{device="nvme2n1"}}')
            assert value(restarts) == 1
    finally:
        feeder.stop.set()
        agent.terminate()
        output = agent.communicate(timeout=10)[0]
    assert agent.returncode == 0, output
    # Logged once when each fault starts and once when it clears, not every second.
    failures = [line for line in output.splitlines() if "nvme1n1" in line and "fail" in line]
    recoveries = [line for line in output.splitlines() if "nvme1n1" in line and "recover" in line]
    assert len(failures) == 2 and len(recoveries) == 2, output
    assert "(io)" in failures[0] and "(timeout)" in failures[1]
