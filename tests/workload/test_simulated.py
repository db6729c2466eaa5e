"""Simulated workloads: the simulator's devices split among named workloads in known shares,
read back by the workload collector through the simulated cgroupfs."""

from __future__ import annotations

import pytest

from nitrometer import metrics as m
from nitrometer.agent.config import AgentConfig
from nitrometer.agent.main import simulated_cgroupfs, workload_collector
from nitrometer.collectors.base import FastClock, SourceSpec
from nitrometer.sim.cgroups import SimulatedCgroupfs, shares_for, with_workloads
from nitrometer.sim.devices import simulated_sources
from tests.agent.conftest import Rig

SPEC = SourceSpec("simulate", "i3en.xlarge", "over-limit", ("gp3",))


def simulated_rig():
    clock = FastClock(0)
    config = AgentConfig(source=SPEC)
    cgroups = simulated_cgroupfs(config, SPEC)
    assert isinstance(cgroups, SimulatedCgroupfs)
    sources = with_workloads(simulated_sources(SPEC, clock), cgroups)
    rig = Rig(sources, clock=clock)
    rig.state.workloads = rig.sampler.workloads = workload_collector(config, SPEC, cgroups)
    return rig, cgroups


def test_simulated_devices_have_workloads_in_their_known_shares():
    rig, cgroups = simulated_rig()
    rig.sampler.run(40)
    by = {}
    for s in rig.samples():
        if s.name in (m.WORKLOAD_READ_OPS, m.WORKLOAD_WRITE_OPS):
            by[(s.name, s.labels["device"], s.labels["workload"])] = s.value
    for device in ("nvme1n1", "nvme2n1"):
        shares = shares_for(cgroups.index[device])
        top_path, top_read, _ = shares[0]
        names = {w.path: w.name for w in rig.state.workloads.cgroups.workloads}
        reads = {names[p]: by[(m.WORKLOAD_READ_OPS, device, names[p])] for p, _r, _w in shares}
        total = sum(reads.values())
        assert total > 0
        for path, read, _write in shares:
            expected = read / sum(r for _p, r, _w in shares)
            assert reads[names[path]] / total == pytest.approx(expected, abs=2e-3)
        assert by[(m.WORKLOAD_READ_OPS, device, "other")] == 0  # five workloads, top 5
    # over-limit: the instance-store device runs over the instance IOPS limit throughout;
    # its exceeded intervals split as the shares say.
    (episode,) = [t.episode for t in rig.state.workloads.devices.values()
                  if t.device.name == "nvme1n1"]
    assert episode.seconds >= 30
    leader, share = episode.top(1, which=0)[0]
    assert leader == "system.slice/postgresql.service" and share == pytest.approx(0.55, abs=1e-3)


def test_the_simulated_tree_goes_with_the_agent():
    rig, cgroups = simulated_rig()
    root = cgroups.root
    del rig, cgroups
    import gc

    gc.collect()
    import os

    assert not os.path.exists(root)
