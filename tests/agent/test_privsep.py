"""Privilege separation: only the reader keeps CAP_SYS_ADMIN, and it sends only two commands."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from devkit.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, identify_bytes
from devkit.fakedev.pages import ebs_page, instance_store_page
from tests.support.prometheus import free_port

SYSFS_FIXTURES = Path(__file__).resolve().parent.parent / "sysfs"
CAP_SYS_ADMIN = 1 << 21


def caps(pid) -> dict[str, int]:
    sets = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cap"):
            name, value = line.split(":")
            sets[name] = int(value, 16)
    return sets


def children(pid) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def alive(pid) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except FileNotFoundError:
        return False


def wait_for(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def devices(fake, tmp_path):
    dev_root = tmp_path / "dev"
    dev_root.mkdir()
    fake.add(f"{dev_root}/nvme1n1", page=ebs_page(),
             identify=identify_bytes("vol0123456789abcdef0", MODEL_EBS))
    fake.add(f"{dev_root}/nvme2n1", page=instance_store_page(),
             identify=identify_bytes("AWS2F1E0D9C8B7A65432", MODEL_INSTANCE_STORE),
             log_pages={0x02: b"\x01" * 512})
    return dev_root


def run_broker_script(fake, dev_root, body: str):
    code = textwrap.dedent(f"""\
        import errno, os, threading
        from nitrometer import privsep
        from nitrometer.broker import start_broker
        broker = start_broker({str(dev_root)!r})
        dev = {str(dev_root)!r}
        def refused(**kw):
            try:
                broker.request(**kw)
            except OSError as exc:
                return exc.errno
            return "sent"
        """) + textwrap.dedent(body)
    proc = fake.python(code)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_reader_sends_log_page_d0_and_identify_and_refuses_everything_else(fake, devices):
    out = run_broker_script(fake, devices, """
        print(len(broker.get_log_page(dev + "/nvme2n1", 1, 8192)))
        print(len(broker.identify(dev + "/nvme1n1")))
        print(refused(opcode=0x80, path=dev + "/nvme1n1"))          # Format NVM
        print(refused(opcode=0x02, path=dev + "/nvme2n1", log_id=0x02, nsid=1, length=512))
        print(refused(opcode=0x02, path=dev + "/nvme2n1", log_id=0xD0, nsid=1, length=1 << 20))
        print(refused(opcode=0x06, path="/etc/passwd"))
        print(refused(opcode=0x06, path=dev + "/../dev/../nvme1n1"))
        open(dev + "/nvme9n1", "w").close()                          # a file, not a device
        print(refused(opcode=0x06, path=dev + "/nvme9n1"))
        os.symlink("/dev/null", dev + "/nvme8n1")
        print(refused(opcode=0x06, path=dev + "/nvme8n1"))
        print(refused(opcode=0x06, path=dev + "/sda"))
        print(len(broker.get_log_page(dev + "/nvme1n1", 1, 4096)))   # still serving
        """)
    eperm = str(__import__("errno").EPERM)
    assert out[:2] == ["8192", "4096"]
    assert out[2:10] == [eperm] * 8
    assert out[10] == "4096"
    sent = fake.commands(f"{devices}/nvme1n1") + fake.commands(f"{devices}/nvme2n1")
    # Only what was allowed reached a device: log page 0xD0 and Identify Controller (CNS 1).
    assert {(c["opcode"], c["cdw10"] & 0xFF) for c in sent} == {(0x02, 0xD0), (0x06, 0x01)}


def test_a_hung_device_does_not_hold_up_the_others(fake, devices):
    fake.fail(f"{devices}/nvme1n1", "hang=4000")
    out = run_broker_script(fake, devices, """
        done = threading.Event()
        def hung():
            try:
                broker.get_log_page(dev + "/nvme1n1", 1, 4096)
            finally:
                done.set()
        threading.Thread(target=hung, daemon=True).start()
        for _ in range(5):
            broker.get_log_page(dev + "/nvme2n1", 1, 8192)
        print("others-read-while-hung" if not done.is_set() else "waited")
        done.wait(30)
        print("hung-one-finished")
        """)
    assert out == ["others-read-while-hung", "hung-one-finished"]


def test_capabilities_after_the_split(fake, devices):
    out = run_broker_script(fake, devices, """
        privsep.limit_capabilities(())
        mine = privsep.capabilities()
        print(mine["CapEff"], mine["CapPrm"], mine["CapBnd"], mine["CapAmb"], mine["CapInh"])
        for attempt in (lambda: os.setuid(1234), lambda: os.chroot("/"),
                        lambda: privsep.limit_capabilities((privsep.CAP_SYS_ADMIN,))):
            try:
                attempt()
                print("allowed")
            except OSError as exc:
                print(errno.errorcode[exc.errno])
        import subprocess, sys
        child = subprocess.run([sys.executable, "-c", "from nitrometer import privsep; "
                                "print(privsep.capabilities()['CapEff'])"],
                               capture_output=True, text=True)
        print(child.stdout.strip())  # a program run from here gains nothing, even as root
        status = open(f"/proc/{broker.pid}/status").read()
        reader = {l.split(":")[0]: int(l.split(":")[1], 16) for l in status.splitlines()
                  if l.startswith("Cap")}
        print(reader["CapEff"], reader["CapBnd"])
        print(len(broker.get_log_page(dev + "/nvme1n1", 1, 4096)))
        """)
    if os.geteuid() != 0:
        pytest.skip("needs root to hold capabilities to drop")
    assert out[:5] == ["0"] * 5
    assert out[5:8] == ["EPERM", "EPERM", "EPERM"]
    assert out[8] == "0"
    assert out[9:11] == [str(CAP_SYS_ADMIN)] * 2
    assert out[11] == "4096"


def start_agent(fake, tmp_path, devices, port):
    sysfs = tmp_path / "sys"
    shutil.copytree(SYSFS_FIXTURES / "ec2-mixed", sysfs)
    return subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", f"--web.listen-address=127.0.0.1:{port}",
         "--source=ioctl", f"--path.sysfs={sysfs}", f"--path.dev={devices}",
         "--no-collector.identity", "--no-collector.host"],
        env=fake.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def scrape(port) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def test_the_agent_runs_unprivileged_and_its_reader_dies_with_it(fake, tmp_path, devices):
    fake.add(f"{devices}/nvme0n1", page=ebs_page(),
             identify=identify_bytes("vol0aaaaaaaaaaaaaaaaa", MODEL_EBS))
    for kill_with in (signal.SIGTERM, signal.SIGKILL):
        port = free_port()
        agent = start_agent(fake, tmp_path / kill_with.name, devices, port)
        try:
            def serving(port=port):
                try:
                    return 'ec2_nvme_read_ops_total{device="nvme0n1"' in scrape(port)
                except OSError:
                    return False

            wait_for(serving, what="the agent to read the devices through its reader")
            if os.geteuid() == 0:
                assert caps(agent.pid)["CapEff"] == 0 and caps(agent.pid)["CapBnd"] == 0
            [keeper] = children(agent.pid)
            [reader] = children(keeper)
            for privileged in (keeper, reader):
                assert caps(privileged)["CapEff"] in (CAP_SYS_ADMIN, caps(agent.pid)["CapEff"])
            agent.send_signal(kill_with)
            agent.wait(timeout=10)
            wait_for(lambda reader=reader: not alive(reader), what="the reader to die")
            wait_for(lambda keeper=keeper: not alive(keeper), what="the keeper to die")
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            out = agent.stdout.read().decode()
        if kill_with == signal.SIGTERM:
            assert agent.returncode == 0, out
            assert "Traceback" not in out
    sent = {c["opcode"] for c in fake.commands(f"{devices}/nvme1n1")}
    assert sent <= {0x02, 0x06} and 0x02 in sent


@pytest.mark.parametrize("flags", [["--demo"], ["--source=simulate:i3en.xlarge"]])
def test_simulated_devices_start_no_privileged_reader(tmp_path, flags):
    sysfs = tmp_path / "sys"
    (sysfs / "class" / "nvme").mkdir(parents=True)  # no Amazon NVMe device: --demo simulates
    port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", f"--web.listen-address=127.0.0.1:{port}",
         f"--path.sysfs={sysfs}", f"--path.dev={tmp_path}", "--no-collector.identity",
         "--no-collector.host", *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def serving():
            try:
                return 'ec2_nvme_read_ops_total{device="nvme1n1"' in scrape(port)
            except OSError:
                return False

        wait_for(serving, what="the simulated devices on /metrics")
        assert children(agent.pid) == []
        if os.geteuid() == 0:
            assert caps(agent.pid)["CapEff"] == 0 and caps(agent.pid)["CapBnd"] == 0
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    out = agent.stdout.read().decode()
    assert agent.returncode == 0, out
    if "--demo" in flags:
        assert "demo: no Amazon NVMe devices here, polling the simulated fleet" in out
