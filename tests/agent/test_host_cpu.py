"""Host CPU counters: psutil's on this machine, and the simulated host CPU that turns the
devices' IOs into busy time (a third less of it on Graviton)."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from devkit.pages import ScriptedSource, device
from nitrometer import metrics as m
from nitrometer.agent.host import host_sampler
from nitrometer.collectors.base import SourceSpec
from nitrometer.collectors.host import HostSampler, cpu_times
from nitrometer.sim.host import X86_CPU_SECONDS_PER_IO, SimulatedCpu
from tests.agent.conftest import promtool_check


def ebs_script(builder, i):
    builder.advance(reads=3000, writes=1000, read_bin=9, write_bin=10, queue=8)


def test_cpu_times_read_the_first_line_of_proc_stat(tmp_path):
    # proc_stat(5): "cpu" then user nice system idle iowait irq softirq steal guest
    # guest_nice, in USER_HZ ticks; per-CPU lines follow.
    (tmp_path / "stat").write_text("cpu  100 2 30 400 5 6 7 8 9 10\n"
                                   "cpu0 50 1 15 200 2 3 3 4 4 5\nintr 1 2 3\n")
    ticks = os.sysconf("SC_CLK_TCK")
    times = cpu_times(str(tmp_path))
    assert list(times) == ["user", "nice", "system", "idle", "iowait", "irq", "softirq",
                           "steal", "guest", "guest_nice"]
    assert times["user"] == 100 / ticks and times["guest_nice"] == 10 / ticks
    (tmp_path / "stat").write_text("cpu  100 2 30 400\n")  # an old kernel's four fields
    assert cpu_times(str(tmp_path)) == {"user": 100 / ticks, "nice": 2 / ticks,
                                        "system": 30 / ticks, "idle": 400 / ticks}


def test_cpu_times_match_psutils():
    ours, theirs = cpu_times(), psutil.cpu_times()
    for name, value in ours.items():
        assert getattr(theirs, name) == pytest.approx(value, abs=0.5)  # read apart in time


def test_host_counters_grow_with_busy_at_most_total():
    sampler = HostSampler()
    first = sampler.sample() or {"busy_seconds": 0.0, "cpu_seconds": 0.0}
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # some CPU time of our own
        sum(range(10_000))
    second = sampler.sample()
    assert second["cpu_seconds"] > first["cpu_seconds"]
    assert 0 < second["busy_seconds"] - first["busy_seconds"] \
        <= second["cpu_seconds"] - first["cpu_seconds"]


@pytest.mark.parametrize(("instance_type", "cost"), [
    ("i3en.xlarge", X86_CPU_SECONDS_PER_IO), ("is4gen.xlarge", X86_CPU_SECONDS_PER_IO * 2 / 3)])
def test_simulated_host_cpu_follows_the_ios_through_the_agent(rig, instance_type, cost):
    r = rig([ScriptedSource(device("nvme1n1", "vol-0123456789abcdef0", "ebs"), None,
                            ebs_script)])
    r.sampler.host = host_sampler(SourceSpec("simulate", instance_type), r.state, r.clock)
    start = r.clock.monotonic()
    r.sampler.run(8)
    elapsed = r.clock.monotonic() - start
    text = r.text()
    assert promtool_check(text) == ""
    ios = r.value(m.READ_OPS, device="nvme1n1", serial="vol-0123456789abcdef0", kind="ebs") \
        + r.value(m.WRITE_OPS, device="nvme1n1", serial="vol-0123456789abcdef0", kind="ebs")
    assert ios > 0
    busy, total = r.value(m.HOST_CPU_BUSY_SECONDS), r.value(m.HOST_CPU_SECONDS)
    assert busy == pytest.approx(ios * cost, rel=1e-9)
    assert total == pytest.approx(4 * elapsed, rel=1e-9)  # xlarge: 4 vCPUs
    assert f"# TYPE {m.HOST_CPU_BUSY_SECONDS} counter" in text


def test_simulated_cpu_saturates_at_its_capacity():
    now = [0.0]
    done = [0.0]
    cpu = SimulatedCpu(lambda: done[0], lambda: now[0], arch="x86_64",
                       normalization_factor=4.0)  # large: 2 vCPUs
    now[0], done[0] = 1.0, 10_000  # 0.3 CPU-seconds of IO
    assert cpu.sample()["busy"] == pytest.approx(0.3 / 2)
    now[0], done[0] = 2.0, 10_000 + 1_000_000  # 30 CPU-seconds of IO in one second
    sample = cpu.sample()
    assert sample["busy"] == 1.0
    assert sample["busy_seconds"] == pytest.approx(0.3 + 2.0)
    assert sample["cpu_seconds"] == pytest.approx(4.0)
