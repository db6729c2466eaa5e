"""The x86_64 wheel installed with Python 3.9 on a host with no compiler: the device commands
and the agent work, and the lean install says what `savings` needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.ec2_mixed import plug_ec2_mixed
from tests.support.processes import stop
from tests.support.prometheus import free_port
from tests.support.scrape import metrics_text

pytestmark = [pytest.mark.wheel, pytest.mark.slow]
SYSFS = Path(__file__).resolve().parents[1] / "sysfs" / "ec2-mixed"
CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvme-cli-captures"
# What real nvme-cli 3.0 printed for the shipped pages: `amzn stats` and `amzn stats -d`.
PRINTED = {"ebs": CAPTURES / "case3-ebs-v0" / "nvme-3.0rc1-text.out",
           "instance-store": CAPTURES / "case1-local-v1" / "nvme-3.0rc1-text.out",
           "instance-store -d": CAPTURES / "case1-local-v1" / "nvme-3.0rc1-text-details.out"}


def test_the_installed_package_is_the_wheel_on_python_39(installed):
    done = installed.run("python", "-c", "import sys, nitrometer.native as n; "
                         "print(sys.version_info[:2], n.__file__, n.lib.NM_MAX_BINS, n.BINDING)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("(3, 9) ")
    assert str(installed.venv) in done.stdout and done.stdout.split()[-2:] == ["64", "api"]


def test_the_installed_package_takes_the_library_on_request(installed):
    env = {**installed.env, "NITROMETER_NATIVE": "abi"}
    done = installed.run("python", "-c", "import nitrometer.native as n; print(n.BINDING)",
                         env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["abi"]
    done = installed.run("nitrometer", "decode", "--sample", "ebs", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == PRINTED["ebs"].read_text()


@pytest.mark.parametrize("name", sorted(PRINTED))
def test_decode_sample_prints_what_nvme_cli_printed(installed, name):
    done = installed.run("nitrometer", "decode", "--sample", *name.split())
    assert done.returncode == 0, done.stderr
    assert done.stdout == PRINTED[name].read_text()


def test_decode_a_file_and_an_unknown_sample(installed, tmp_path):
    page = tmp_path / "page.bin"
    shipped = next(installed.venv.glob("lib/python3.9/site-packages/nitrometer/data/samples"))
    page.write_bytes((shipped / "ebs.bin").read_bytes())
    done = installed.run("nitrometer", "decode", str(page))
    assert done.returncode == 0, done.stderr
    assert done.stdout == PRINTED["ebs"].read_text()
    done = installed.run("nitrometer", "decode", "--sample", "nvme9")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "nitrometer: unknown sample 'nvme9' (known: ebs, instance-store)"]
    assert "instance-store" in installed.run("nitrometer", "decode", "--help").stdout


def test_snapshot_of_simulated_devices(installed):
    done = installed.run("nitrometer", "snapshot", "--source", "simulate:i3en.xlarge", "1", "2")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("nvme1n1")]
    assert len(rows) == 2 and all(" read " in row for row in rows)
    assert "worst " in done.stdout


def test_agent_serves_metrics(installed):
    port = free_port()
    agent = installed.popen("nitrometer", "run", "--source", "simulate:i3en.xlarge",
                            f"--web.listen-address=127.0.0.1:{port}", "--poll.interval=1s",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        text = ""
        deadline = time.monotonic() + 60
        while "ec2_nvme_read_ops_total{" not in text:
            assert agent.poll() is None, agent.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, text[-2000:]
            time.sleep(0.3)
            text = metrics_text(port, timeout=5)
    finally:
        stop(agent, 30)
    assert agent.returncode == 0
    assert re.search(r'nitrometer_build_info\{python_version="3\.9\.\d+"', text)
    assert re.search(r'nitrometer_device_up\{device="nvme1n1",kind="instance_store"[^}]*\} 1', text)
    reads = re.search(r'ec2_nvme_read_ops_total\{[^}]*device="nvme1n1"[^}]*\} (\S+)', text)
    assert reads and float(reads.group(1)) > 0


def test_savings_without_the_extra_says_what_to_install(installed):
    assert installed.run("python", "-c", "import pandas").returncode != 0
    assert installed.run("python", "-c", "import pyarrow").returncode != 0
    done = installed.run("nitrometer", "savings", "--usage", "nothing.csv")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "nitrometer: nitrometer savings needs pandas, pyarrow, duckdb and sqlglot: "
        "pip install 'nitrometer[savings]'"]


def test_the_agent_reads_devices_through_the_keeper_shipped_in_the_wheel(installed, fake,
                                                                          tmp_path):
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    shutil.copytree(SYSFS, sysfs)
    dev.mkdir()
    plug_ec2_mixed(fake, dev)
    port = free_port()
    agent = subprocess.Popen(
        [str(installed.venv / "bin" / "nitrometer"), "run", "--source=ioctl",
         f"--path.sysfs={sysfs}", f"--path.dev={dev}", f"--web.listen-address=127.0.0.1:{port}",
         "--no-collector.identity", "--no-collector.host"],
        env=fake.env(installed.env), cwd=installed.cwd, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while 'nitrometer_device_up{device="nvme1n1"' not in metrics_text(port, timeout=5):
            assert agent.poll() is None, agent.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the agent never served the devices"
            time.sleep(0.3)
        [keeper] = Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()
        shipped = os.readlink(f"/proc/{keeper}/exe")
    finally:
        stop(agent, 30)
    assert agent.returncode == 0, agent.stdout.read().decode()[-2000:]
    assert shipped.startswith(str(installed.venv)) and shipped.endswith("/nitrometer-reader")
    sent = {c["opcode"] for c in fake.commands(f"{dev}/nvme1n1")}
    assert 0x02 in sent and sent <= {0x02, 0x06}
