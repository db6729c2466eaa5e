"""Faults in the privileged side: a killed reader is replaced, a silent one too, and a lost
keeper starves the systemd watchdog so that systemd restarts the service."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from devkit.fakedev import MODEL_EBS, identify_bytes
from devkit.fakedev.pages import ebs_page
from nitrometer import metrics as m
from tests.agent.test_privsep import alive, children, wait_for
from tests.support.ec2_mixed import LOCAL, ROOT_EBS, plug_ec2_mixed
from tests.support.processes import stop
from tests.support.prometheus import free_port

SYSFS = Path(__file__).resolve().parent.parent / "sysfs" / "ec2-mixed"
WATCHDOG_SEC = 3.0


@pytest.fixture
def dev(fake, tmp_path) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    plug_ec2_mixed(fake, dev, names=(ROOT_EBS, LOCAL))
    return dev


class Agent:
    """`nitrometer run` on the fake devices, its log in a file, a fake NOTIFY_SOCKET."""

    def __init__(self, fake, tmp_path: Path, dev: Path, sysfs: Path = SYSFS):
        self.port = free_port()
        self.log = tmp_path / "agent.log"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(tmp_path / "notify"))
        self.notify.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        env = fake.env()
        env.update(NOTIFY_SOCKET=str(tmp_path / "notify"),
                   WATCHDOG_USEC=str(int(WATCHDOG_SEC * 1e6)))
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "nitrometer", "run", "--source=ioctl",
                 f"--path.sysfs={sysfs}", f"--path.dev={dev}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--no-collector.identity",
                 "--no-collector.host"], env=env, stdout=out, stderr=subprocess.STDOUT)

    def scrape(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                        timeout=10) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    def sample(self, name: str, device: str | None = None) -> float | None:
        labels = f'\\{{[^}}]*device="{device}"[^}}]*\\}}' if device else ""
        found = re.search(rf"^{name}{labels} (\S+)$", self.scrape(), re.M)
        return float(found.group(1)) if found else None

    def listen(self, seconds: float) -> None:
        """Takes the notify datagrams for `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.messages.append((time.monotonic(), self.notify.recv(4096).decode()))
            except socket.timeout:
                pass

    def pings(self, since: float = 0.0) -> list[float]:
        return [t for t, text in self.messages if text == "WATCHDOG=1" and t >= since]

    def privileged(self) -> tuple[int, int]:
        """(keeper, reader) pids."""
        [keeper] = children(self.process.pid)
        [reader] = children(keeper)
        return keeper, reader

    def close(self) -> str:
        if self.process.poll() is None:
            stop(self.process)
        self.notify.close()
        return self.log.read_text()


def serving(agent: Agent, device: str = "nvme0n1"):
    return lambda: agent.sample(m.DEVICE_UP, device) == 1.0


def test_a_killed_reader_is_replaced_logged_and_counted(fake, tmp_path, dev):
    agent = Agent(fake, tmp_path, dev)
    try:
        wait_for(serving(agent), what="the agent to serve the devices")
        assert agent.sample(m.READER_RESTARTS) == 0.0
        keeper, reader = agent.privileged()
        reads_before = len(fake.commands(f"{dev}/nvme0n1"))
        killed = time.monotonic()
        os.kill(reader, signal.SIGKILL)
        wait_for(lambda: agent.sample(m.READER_RESTARTS) == 1.0, timeout=15,
                 what="the replacement to be counted")
        wait_for(lambda: len(fake.commands(f"{dev}/nvme0n1")) > reads_before + 2
                 and agent.sample(m.DEVICE_UP, "nvme0n1") == 1.0
                 and agent.sample(m.DEVICE_UP, "nvme1n1") == 1.0,
                 timeout=15 - (time.monotonic() - killed), what="the devices to serve again")
        assert not alive(reader)
        assert agent.privileged()[0] == keeper and agent.privileged()[1] != reader
        new_reader = agent.privileged()[1]
    finally:
        log = agent.close()
    lines = [line for line in log.splitlines() if "privileged reader replaced" in line]
    assert len(lines) == 1, log
    assert f"reader {reader} was killed by SIGKILL" in lines[0]
    assert f"reader {new_reader} reads the devices now" in lines[0]


def test_without_its_keeper_the_agent_starves_the_watchdog(fake, tmp_path, dev):
    agent = Agent(fake, tmp_path, dev)
    try:
        wait_for(serving(agent), what="the agent to serve the devices")
        agent.listen(2 * WATCHDOG_SEC)
        assert len(agent.pings()) >= 2, agent.messages  # fed while readers answer
        keeper, reader = agent.privileged()
        os.kill(keeper, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: not alive(reader), what="the reader to die with its keeper")
        # The first unanswered read within a tick or two, no answer for WATCHDOG_SEC after
        # it, a ping already due: from then on, no more pings.
        agent.listen(5 * WATCHDOG_SEC)
        quiet_from = killed + 3 * WATCHDOG_SEC
        assert agent.pings(since=quiet_from) == [], agent.messages
        assert agent.sample(m.DEVICE_UP, "nvme0n1") == 0.0  # down, not frozen
        assert agent.process.poll() is None  # still serving /metrics: systemd decides
    finally:
        log = agent.close()
    assert f"the privileged keeper (pid {keeper}) is gone" in log
    assert "no longer feeding the systemd watchdog" in log


def test_with_no_device_to_read_a_lost_keeper_does_not_starve_the_watchdog(fake, tmp_path):
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    (sysfs / "class" / "nvme").mkdir(parents=True)
    (sysfs / "block").mkdir()
    dev.mkdir()
    agent = Agent(fake, tmp_path, dev, sysfs=sysfs)
    try:
        wait_for(lambda: agent.sample(m.READER_RESTARTS) == 0.0, what="the agent to serve")
        keeper, _ = agent.privileged()
        os.kill(keeper, signal.SIGKILL)
        killed = time.monotonic()
        agent.listen(4 * WATCHDOG_SEC)
        assert len(agent.pings(since=killed + 2 * WATCHDOG_SEC)) >= 2, agent.messages
    finally:
        log = agent.close()
    assert "no longer feeding" not in log


def test_a_reader_that_gives_no_answer_is_replaced_a_slow_device_is_not(fake, tmp_path, dev):
    """A silent reader (stopped) is replaced after the bound; a device slower than the bound
    is not a silent reader while the others are answered, and its command is never cut."""
    fake.add(f"{dev}/nvme5n1", page=ebs_page(),
             identify=identify_bytes("vol05555555555555555", MODEL_EBS))
    fake.fail(f"{dev}/nvme5n1", "hang=5000")
    code = textwrap.dedent(f"""\
        import os, signal, threading, time
        from nitrometer import privsep
        from nitrometer.broker import start_broker
        broker = start_broker({str(dev)!r}, stuck_after=2.0)
        dev = {str(dev)!r}
        slow = []
        t = threading.Thread(target=lambda: slow.append(
            len(broker.get_log_page(dev + "/nvme5n1", 1, 4096))))
        t.start()
        for _ in range(12):  # 3 s of answers from the others while nvme5n1 hangs
            broker.get_log_page(dev + "/nvme0n1", 1, 4096)
            time.sleep(0.25)
        t.join()
        print("slow-device-answered", slow, broker.restarts)
        first = broker.pid
        os.kill(first, signal.SIGSTOP)
        try:
            broker.get_log_page(dev + "/nvme0n1", 1, 4096)
        except OSError as exc:
            print("silent-reader-failed", exc.errno)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                print("served-again", len(broker.get_log_page(dev + "/nvme0n1", 1, 4096)))
                break
            except OSError:
                time.sleep(0.1)
        print("replaced", broker.restarts, broker.pid != first)
        """)
    done = fake.python(code, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "slow-device-answered [4096] 0", "silent-reader-failed 5", "served-again 4096",
        "replaced 1 True"], done.stdout + done.stderr
    assert "gave no answer for 2s: killed" in done.stderr
    timeouts = {c["timeout_ms"] for c in fake.commands(f"{dev}/nvme5n1")}
    assert timeouts == {0}  # no admin command is sent with a short timeout


def test_a_reader_refuses_a_namespace_id_other_than_the_nodes(fake, dev):
    code = textwrap.dedent(f"""\
        from nitrometer import privsep
        from nitrometer.broker import start_broker
        broker = start_broker({str(dev)!r})
        for nsid in (1, 2, 0xFFFFFFFF, 0):
            try:
                print(len(broker.get_log_page({str(dev)!r} + "/nvme0n1", nsid, 4096)))
            except OSError as exc:
                print(exc.errno)
        """)
    done = fake.python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4096", "1", "1", "1"]  # EPERM for any other namespace
    assert {c["nsid"] for c in fake.commands(f"{dev}/nvme0n1") if c["opcode"] == 2} == {1}
