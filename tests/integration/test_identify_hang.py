"""One controller hanging on Identify holds back no other device (the real ioctl path, with
the privileged reader, on fake devices).

The others are on /metrics within 5 s of the agent answering, and the hung one is reported
in one log line and in the errors metric; no second Identify is stacked on it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nitrometer import metrics as m
from tests.support.ec2_mixed import DATA_EBS, LOCAL, ROOT_EBS, plug_ec2_mixed
from tests.support.processes import stop
from tests.support.prometheus import free_port
from tests.support.scrape import metrics_text

pytestmark = pytest.mark.slow
SYSFS = Path(__file__).resolve().parent.parent / "sysfs" / "ec2-mixed"
SERVED_WITHIN = 5.0  # seconds after /metrics first answers, as the service promises
PATIENCE = 30.0  # how long the test waits for anything (generous: the machine is loaded)
HUNG, HEALTHY_EBS = ROOT_EBS, DATA_EBS
NOT_ANSWERED = "Identify Controller has not answered"



def has(text: str, name: str, *fragments: str, value: float | None = None) -> bool:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f in line for f in fragments):
            if value is None or float(line.rsplit(" ", 1)[1]) == value:
                return True
    return False


def up(device: str, value: float) -> tuple:
    return m.DEVICE_UP, f'device="{device}"', value


def bdev(device: str, name: str) -> tuple:
    return m.DEVICE_INFO, f'device="{device}"', f'bdev="{name}"', 1


def errors(device: str, reason: str) -> tuple:
    return m.DEVICE_ERRORS, f'device="{device}"', f'reason="{reason}"', None


class Agent:
    """The agent on three fake devices (sysfs fixture ec2-mixed), one of them hanging."""

    def __init__(self, tmp_path: Path, fake, control: str):
        sysfs, self.dev = tmp_path / "sys", tmp_path / "dev"
        shutil.copytree(SYSFS, sysfs)
        self.dev.mkdir()
        self.fake = fake
        plug_ec2_mixed(fake, self.dev)
        fake.fail(self.path(HUNG), control)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nitrometer", "run", "--source", "ioctl",
             "--path.sysfs", str(sysfs), "--path.dev", str(self.dev),
             "--no-collector.identity", "--rescan.interval", "1s",
             "--web.listen-address", f"127.0.0.1:{self.port}"],
            env=fake.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while not metrics_text(self.port):
            assert self.proc.poll() is None and time.monotonic() < deadline, "never served"
            time.sleep(0.05)
        self.answering = time.monotonic()

    def path(self, device: str) -> str:
        return f"{self.dev}/{device}"

    def wait_for(self, *wanted: tuple) -> float:
        """Seconds from the first answer of /metrics until every wanted series was there."""
        while True:
            text = metrics_text(self.port)
            if all(has(text, *w[:-1], value=w[-1]) for w in wanted):
                return time.monotonic() - self.answering
            assert time.monotonic() < self.answering + PATIENCE, text
            time.sleep(0.1)

    def identifies(self, device: str) -> list[dict]:
        return [c for c in self.fake.commands(self.path(device)) if c["opcode"] == 0x06]

    def output(self) -> str:
        stop(self.proc)
        return self.proc.communicate(timeout=10)[0]


def test_a_controller_hung_in_every_command_holds_back_no_other_device(tmp_path, fake):
    agent = Agent(tmp_path, fake, "hang=60000")  # Identify first, then its page reads: 60 s
    try:
        served = agent.wait_for(up(LOCAL, 1), up(HEALTHY_EBS, 1), bdev(HEALTHY_EBS, "sdf"))
        agent.wait_for(errors(HUNG, "identify_timeout"))
        # Its page reads hang as well: it is down, its reads counted as timeouts.
        agent.wait_for(up(HUNG, 0), errors(HUNG, "timeout"))
        assert served <= SERVED_WITHIN, f"healthy devices served after {served:.1f}s"
        time.sleep(3)  # rescans every second meanwhile
        assert len(agent.identifies(HUNG)) == 1  # in flight: never a second one stacked on it
        assert all(c["timeout_ms"] == 0 for c in fake.commands(agent.path(HUNG)))
    finally:
        output = agent.output()
    slow = [line for line in output.splitlines() if NOT_ANSWERED in line]
    assert len(slow) == 1 and HUNG in slow[0], output


def test_a_controller_slow_to_identify_is_polled_and_named_once_it_answers(tmp_path, fake):
    agent = Agent(tmp_path, fake, "hang-identify=8000")  # its page reads answer at once
    try:
        served = agent.wait_for(up(LOCAL, 1), up(HEALTHY_EBS, 1), up(HUNG, 1),
                                bdev(HUNG, ""), errors(HUNG, "identify_timeout"))
        assert served <= SERVED_WITHIN, f"devices served after {served:.1f}s"
        agent.wait_for(bdev(HUNG, "/dev/xvda"))
        assert len(agent.identifies(HUNG)) == 1  # the name came from the first Identify
        text = metrics_text(agent.port)
        assert has(text, *errors(HUNG, "identify_timeout")[:-1], value=1)
        assert not has(text, *errors(HUNG, "timeout")[:-1])
    finally:
        output = agent.output()
    lines = [line for line in output.splitlines() if HUNG in line]
    assert len([line for line in lines if NOT_ANSWERED in line]) == 1, output
    assert len([line for line in lines if "answered after" in line]) == 1, output
