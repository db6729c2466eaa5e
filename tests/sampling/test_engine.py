"""The engine's device set: devices come, go and are renamed (by a watcher's scans) and each
keeps its baseline and counts across a rename; a detached one leaves nothing behind."""

from __future__ import annotations

from dataclasses import replace

import pytest

from devkit.pages import ScriptedSource, device
from nitrometer.agent.exporter import Exporter
from nitrometer.agent.sampler import Sampler
from nitrometer.agent.state import AgentState
from nitrometer.collectors.base import FastClock
from nitrometer.sampling import Engine, Settings


class Watcher:
    """Hands the engine the scans a test sets, and opens scripted sources for them."""

    def __init__(self, clock, script):
        self.clock, self.script = clock, script
        self.scan = None
        self.opened: list = []
        self.builders: dict = {}

    def take(self):
        scan, self.scan = self.scan, None
        return scan

    def open(self, dev):
        source = ScriptedSource(dev, self.clock, self.script)
        # The same device keeps counting under a new name: share its page builder.
        if dev.serial in self.builders:
            source.builder = self.builders[dev.serial]
        self.builders[dev.serial] = source.builder
        self.opened.append(source)
        return source

    def close(self):
        pass


def steady(builder, i):
    builder.advance(reads=100, writes=10)


def test_rename_keeps_state_and_detach_removes_every_series():
    clock = FastClock(0)
    watcher = Watcher(clock, steady)
    state = AgentState()
    sampler = Sampler(state, clock=clock, watcher=watcher)
    exporter = Exporter(state, process=False)
    first = device("nvme1n1", serial="AWSKEEP0000000000001")
    other = device("nvme2n1", serial="AWSGONE0000000000002")
    watcher.scan = [first, other]
    sampler.run(3)
    renamed = replace(first, name="nvme5n1", path="/dev/nvme5n1", controller="nvme5")
    watcher.scan = [renamed]  # nvme2n1 detached, nvme1n1 now nvme5n1
    sampler.run(3)
    text = exporter.body().decode()
    assert "nvme2n1" not in text and "AWSGONE" not in text
    assert 'device="nvme1n1"' not in text
    # 6 reads of 100 each, the first counted from the device's own zero: nothing lost.
    assert ('ec2_nvme_read_ops_total{device="nvme5n1",kind="instance_store",'
            'serial="AWSKEEP0000000000001"} 600.0') in text
    assert 'nitrometer_device_resets_total{device="nvme5n1"' in text
    assert [s.device.name for s in watcher.opened] == ["nvme1n1", "nvme2n1", "nvme5n1"]
    assert watcher.opened[0].closed and watcher.opened[1].closed


def test_errors_of_a_detached_device_go_with_it():
    clock = FastClock(0)
    watcher = Watcher(clock, steady)
    state = AgentState()
    sampler = Sampler(state, clock=clock, watcher=watcher)
    failing = device("nvme3n1", serial="AWSFAIL0000000000003")
    watcher.scan = [failing]
    sampler.run(1)
    watcher.opened[0].fail = lambda i: 5  # EIO from now on
    sampler.run(2)
    assert any(k[0] == "nvme3n1" for k in state.device_errors)
    watcher.scan = []
    sampler.run(1)
    assert state.device_errors == {} and state.devices == {}


def test_inline_sources_give_one_interval_each_per_tick():
    clock = FastClock(0)
    sources = [ScriptedSource(device(f"nvme{i}n1", serial=f"AWS{i:017d}"), clock, steady)
               for i in range(3)]
    engine = Engine(sources, clock=clock)
    engine.wait_next()
    assert len(engine.tick().baselines) == 3
    engine.wait_next()
    result = engine.tick()
    assert [iv.op("read").ops for iv in result.intervals] == [100, 100, 100]
    assert all(iv.seconds == 1.0 for iv in result.intervals)


@pytest.mark.parametrize("interval", [0.5, 3601.0, float("inf"), float("nan")])
def test_the_engine_takes_no_interval_its_timers_cannot_keep(interval):
    with pytest.raises(ValueError, match="from 1s to 3600s"):
        Settings(interval=interval)
