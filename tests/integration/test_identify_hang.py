"""One controller hanging on Identify holds back no other device (the real ioctl path, with
the privileged reader, on fake devices).

The hung controller's Identify runs for 60 s; the others are on /metrics within 5 s of the
agent answering, and the hung one is reported in one log line and in the errors metric.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nitrometer import metrics as m
from tests.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, identify_bytes
from tests.fakedev.pages import ebs_page, instance_store_page
from tests.support.processes import stop
from tests.support.prometheus import free_port

pytestmark = pytest.mark.slow
SYSFS = Path(__file__).resolve().parent.parent / "sysfs" / "ec2-mixed"
SERVED_WITHIN = 5.0  # seconds after /metrics first answers, as the service promises


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return None


def has(text: str, name: str, *fragments: str, value: float | None = None) -> bool:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f in line for f in fragments):
            if value is None or float(line.rsplit(" ", 1)[1]) == value:
                return True
    return False


def test_hung_identify_holds_back_no_other_device(tmp_path, fake):
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    shutil.copytree(SYSFS, sysfs)
    dev.mkdir()
    fake.add(f"{dev}/nvme0n1", page=ebs_page(),
             identify=identify_bytes("vol0a1b2c3d4e5f60718", MODEL_EBS, bdev="/dev/xvda"))
    fake.add(f"{dev}/nvme1n1", page=instance_store_page(),
             identify=identify_bytes("AWS1A2B3C4D5E6F7G8H9", MODEL_INSTANCE_STORE))
    fake.add(f"{dev}/nvme2n1", page=ebs_page(),
             identify=identify_bytes("vol0fedcba9876543210", MODEL_EBS, bdev="sdf"))
    fake.fail(f"{dev}/nvme0n1", "hang=60000")  # every command, Identify first, takes 60 s
    port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", "--source", "ioctl",
         "--path.sysfs", str(sysfs), "--path.dev", str(dev), "--no-collector.identity",
         "--rescan.interval", "1s",
         "--web.listen-address", f"127.0.0.1:{port}"],
        env=fake.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while (text := scrape(port)) is None:
            assert agent.poll() is None and time.monotonic() < deadline, "agent never served"
            time.sleep(0.05)
        answering = time.monotonic()
        healthy = [(m.DEVICE_UP, 'device="nvme1n1"'), (m.DEVICE_UP, 'device="nvme2n1"'),
                   (m.DEVICE_INFO, 'device="nvme2n1"', 'bdev="sdf"')]
        while not all(has(text, *want, value=1) for want in healthy):
            assert time.monotonic() < answering + 30, text  # generous; checked below
            time.sleep(0.1)
            text = scrape(port) or ""
        served_after = time.monotonic() - answering
        hung = 'device="nvme0n1"', 'reason="identify_timeout"'
        while not has(text, m.DEVICE_ERRORS, *hung, value=1):
            assert time.monotonic() < answering + 30, text
            time.sleep(0.1)
            text = scrape(port) or ""
        # Its page reads hang as well: it is down, with its reads counted as timeouts.
        while not (has(text, m.DEVICE_UP, 'device="nvme0n1"', value=0)
                   and has(text, m.DEVICE_ERRORS, 'device="nvme0n1"', 'reason="timeout"')):
            assert time.monotonic() < answering + 30, text
            time.sleep(0.1)
            text = scrape(port) or ""
        assert served_after <= SERVED_WITHIN, f"healthy devices served after {served_after:.1f}s"
        time.sleep(3)  # rescans every second meanwhile
        identifies = [c for c in fake.commands(f"{dev}/nvme0n1") if c["opcode"] == 0x06]
        assert len(identifies) == 1  # still in flight: never a second one stacked on it
        assert all(c["timeout_ms"] == 0 for c in fake.commands(f"{dev}/nvme0n1"))
    finally:
        stop(agent)
    output = agent.communicate(timeout=10)[0]
    slow = [line for line in output.splitlines() if "Identify Controller has not answered" in line]
    assert len(slow) == 1 and "nvme0n1" in slow[0], output
