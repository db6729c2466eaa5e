"""What devices really do, through the real ioctl path, in the agent and in snapshot.

One counter stepping back, one bin stepping back, a restart, a layout change, a newer page
version, reads that take 0.2 s, a renamed device and a hung one, all at once on fake devices:
every total is what a person would expect, nothing goes down, nothing stalls the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nitrometer import metrics as m
from tests.integration.sequences import PAGES, READS, WRITES, scenarios, write_sysfs
from tests.support.prometheus import free_port

pytestmark = pytest.mark.slow


def set_up(fake, tmp_path):
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    dev.mkdir()
    cases = scenarios()
    write_sysfs(sysfs, [(c.device, c.kind, c.serial) for c in cases])
    for case in cases:
        fake.add(f"{dev}/{case.device}", identify=case.identify)
        fake.set_sequence(f"{dev}/{case.device}", case.pages)
        if case.control:
            fake.fail(f"{dev}/{case.device}", case.control)
    return sysfs, dev, {c.name: c for c in cases}


def scrape(port: int) -> dict:
    """(name, frozenset(labels)) -> value, from the agent's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float | None:
    """The one sample of `name` whose labels include `labels`."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def wait_until(check, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def terminate(agent) -> tuple[str, float]:
    """SIGTERM; (its output, seconds until it exited). Killed if it does not exit at all."""
    started = time.monotonic()
    agent.terminate()
    try:
        output = agent.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        agent.kill()
        output = agent.communicate()[0]
    return output, time.monotonic() - started


def test_agent(fake, tmp_path):
    sysfs, dev, cases = set_up(fake, tmp_path)
    port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", "--source", "ioctl",
         "--path.sysfs", str(sysfs), "--path.dev", str(dev), "--rescan.interval", "1s",
         "--web.listen-address", f"127.0.0.1:{port}", "--instance.type", "i3en.xlarge"],
        env=fake.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    history: list[dict] = []
    try:
        renamed = cases["renamed"]
        old = f"{dev}/{renamed.device}"
        wait_until(lambda: fake.position(old) >= 2, what="the rename device's third read")
        # Renamed: same serial, another node (e.g. after a driver rebind).
        fake.alias(f"{dev}/nvme9n1", old)
        (sysfs / "class/nvme/nvme8").rename(sysfs / "class/nvme/nvme9")
        (sysfs / "class/nvme/nvme9/nvme8n1").rename(sysfs / "class/nvme/nvme9/nvme9n1")
        # Every sequence read to its end, then a few more ticks on the last page.
        live = [c for c in cases.values() if c.name != "hung"]

        def done():
            history.append(scrape(port))
            return all(fake.position(f"{dev}/{c.device}") == PAGES - 1 for c in live
                       if c.name != "renamed") and fake.position(old) == PAGES - 1
        wait_until(done, what="every sequence read")
        time.sleep(3)
        final = scrape(port)
        history.append(final)
    finally:
        output, stop_took = terminate(agent)
    assert agent.returncode == 0, output
    # A read stuck in the ioctl (120 s) does not hold up SIGTERM.
    assert stop_took < 3, output

    for case in live:
        device = "nvme9n1" if case.name == "renamed" else case.device
        assert value(final, m.READ_OPS, device=device) == case.read_ops_total, case.name
    # Nothing exported ever went down, whatever the devices did.
    for name in (m.READ_OPS, m.WRITE_OPS, m.READ_TIME, m.WRITE_TIME, f"{m.LATENCY}_count",
                 f"{m.LATENCY}_bucket", f"{m.LATENCY}_sum"):
        previous: dict = {}
        for samples in history:
            for (n, labels), v in samples.items():
                if n == name:
                    assert v >= previous.get(labels, 0), (name, dict(labels))
                    previous[labels] = v

    back = cases["one counter back"]
    assert value(final, m.GLITCHES, device=back.device, field="total_write_time") == 1
    assert value(final, m.COUNTER_RESETS, device=back.device) == 0
    # The read rate never saw the 6-million-op second a false reset would give.
    assert value(final, m.PEAK_IOPS, device=back.device, op="read") == pytest.approx(
        READS, rel=0.5)
    bins = cases["one bin back"]
    assert value(final, m.GLITCHES, device=bins.device, field="read_bins") == 1
    assert value(final, f"{m.LATENCY}_count", device=bins.device, op="read") < 2 * PAGES * READS
    assert value(final, m.COUNTER_RESETS, device=cases["reset"].device) == 1
    assert value(final, m.LAYOUT_CHANGES, device=cases["layout change"].device) == 1
    for name in ("read ops spike", "write ops at 2^64-1", "read ops back by one, never wrote"):
        device = cases[name].device
        assert value(final, m.COUNTER_RESETS, device=device) == 0, name
        assert value(final, m.WRITE_OPS, device=device) == (
            0 if "never wrote" in name else PAGES * WRITES), name
        # A field that stepped back catches up in the next second: 2x, never 10^9.
        assert value(final, m.PEAK_IOPS, device=device, op="read") <= 2.2 * READS, name
    spike, top = cases["read ops spike"].device, cases["write ops at 2^64-1"].device
    assert value(final, m.GLITCHES, device=spike, field="total_read_ops") == 1
    assert value(final, m.GLITCHES, device=top, field="total_write_ops") == 1
    flapping = cases["read ops back by one, never wrote"].device
    assert value(final, m.GLITCHES, device=flapping, field="total_read_ops") == 2
    newer = cases["version 2"]
    assert value(final, m.DEVICE_INFO, device=newer.device, page_version="2") == 1
    assert value(final, f"{m.IO_SIZE_LATENCY}_count", device=newer.device, op="read",
                 io_size="4K") == PAGES * READS
    assert sum("version 2 is newer" in line for line in output.splitlines()) == 1
    slow = cases["slow reads"]
    assert value(final, m.DEVICE_UP, device=slow.device) == 1
    assert value(final, m.DEVICE_ERRORS, device=slow.device) is None
    hung = cases["hung"]
    assert value(final, m.DEVICE_UP, device=hung.device) == 0
    assert value(final, m.DEVICE_ERRORS, device=hung.device, reason="timeout") == 1
    # The renamed device kept its state; its old name's series went away with it.
    assert value(final, m.COUNTER_RESETS, device="nvme9n1") == 0
    assert not [k for k in final if ("device", "nvme8n1") in k[1]]


def test_snapshot(fake, tmp_path):
    sysfs, dev, cases = set_up(fake, tmp_path)
    done = fake.nitrometer("snapshot", "--path.sysfs", str(sysfs), "--path.dev", str(dev),
                           "1", str(PAGES - 1), "--json", timeout=120)
    # A hung device is said once on stderr and makes the status 2; the others all show.
    assert done.returncode == 2, done.stderr
    hung_lines = [line for line in done.stderr.splitlines() if "nvme7n1" in line]
    assert len(hung_lines) == 1 and "in flight" in hung_lines[0]
    assert sum("version 2 is newer" in line for line in done.stderr.splitlines()) == 1
    rows: dict[str, list[dict]] = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        rows.setdefault(record["device"]["name"], []).append(record)
    assert "nvme7n1" not in rows

    def reads(name):
        return [r["read"]["ops"] for r in rows[cases[name].device]]

    assert reads("one counter back") == [READS] * (PAGES - 1)
    back = rows[cases["one counter back"].device]
    # The glitch interval has no measure of write time: null, not 0.
    assert back[1]["write"]["time_us"] is None and back[1]["write"]["mean_us"] is None
    assert all(r["write"]["time_us"] > 0 for i, r in enumerate(back) if i != 1)
    assert not any(r["reset"] for r in back)
    assert reads("one bin back") == [READS] * (PAGES - 1)
    reset = rows[cases["reset"].device]
    # The page after the restart is held until the next one confirms it: one row of two
    # seconds holds what the device did since it restarted.
    assert [r["reset"] for r in reset] == [False, False, True, False]
    assert reads("reset") == [READS, READS, 500 + READS, READS]
    assert reset[2]["interval_s"] == pytest.approx(2.0, abs=0.3)
    # The interval into the new layout is a new baseline, not a row.
    assert reads("layout change") == [READS] * (PAGES - 2)
    assert reads("version 2") == [READS] * (PAGES - 1)
    assert reads("slow reads") == [READS] * (PAGES - 1)
    # A held page is no row; the next row spans both intervals and holds both.
    assert reads("read ops spike") == [READS, 2 * READS, READS, READS]
    assert reads("write ops at 2^64-1") == [READS, 2 * READS, READS, READS]
    assert sum(reads("read ops back by one, never wrote")) == (PAGES - 1) * READS
    assert all(r["interval_s"] == pytest.approx(1.0, abs=0.3) for r in rows["nvme6n1"])


def test_sigterm_ends_an_nvme_cli_run_stuck_in_the_device(tmp_path):
    sysfs, bin_dir = tmp_path / "sys", tmp_path / "bin"
    write_sysfs(sysfs, [("nvme1n1", "instance_store", "AWSSTUCK000000000001")])
    bin_dir.mkdir()
    nvme = bin_dir / "nvme"
    marker = tmp_path / "nvme.pid"
    nvme.write_text(f"#!/bin/sh\necho $$ > {marker}\nexec sleep 120\n")
    nvme.chmod(0o755)
    port = free_port()
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    agent = subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", "--source", "nvme-cli",
         "--path.sysfs", str(sysfs), "--path.dev", str(tmp_path / "dev"),
         "--web.listen-address", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(marker.exists, what="nvme-cli to start")
        stuck = int(marker.read_text())
        time.sleep(1.5)
    finally:
        output, took = terminate(agent)
    assert agent.returncode == 0, output
    assert took < 3, output
    # The stuck nvme-cli run was ended, not left behind.
    wait_until(lambda: not Path(f"/proc/{stuck}").exists()
               or "Z" in Path(f"/proc/{stuck}/stat").read_text().split()[2],
               timeout=10, what="the nvme-cli run to end")
