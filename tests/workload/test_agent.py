"""The workload collector in the agent over fake devices and a fixture cgroupfs: exact top
workloads, exact shares of an exceeded episode, K + 1 series with 500 cgroups, promtool."""

from __future__ import annotations

import pytest

from devkit.cgroupfs import CONTAINER_ID, POD_CONTAINER, POD_UID, CgroupTree, write_devnums
from devkit.pages import ScriptedSource, device
from nitrometer import metrics as m
from nitrometer.agent.workloads import WorkloadCollector
from nitrometer.collectors.cgroups import CgroupIO
from tests.agent.conftest import Events, Rig, promtool_check

PG = "system.slice/postgresql.service"
NGINX = "system.slice/nginx.service"
POD = f"pod/{POD_UID}/{CONTAINER_ID[:12]}"
EXCEEDED = range(5, 19)  # 14 exceeded intervals


def rig_with(tmp_path, sources, top=5):
    rig = Rig(sources, events=Events())
    write_devnums(tmp_path / "sys", {"nvme1n1": "259:1", "nvme2n1": "259:2"})
    collector = WorkloadCollector(CgroupIO(str(tmp_path / "cgroup")),
                                  sysfs_root=str(tmp_path / "sys"), top=top,
                                  clock=rig.clock.monotonic)
    rig.state.workloads = rig.sampler.workloads = collector
    return rig


def two_devices(tmp_path):
    tree = CgroupTree(tmp_path / "cgroup")
    for path in (PG, NGINX, POD_CONTAINER):
        tree.mkdir(path)

    def busy(builder, index):
        over = index in EXCEEDED
        builder.advance(reads=1000, writes=100,
                        exceeded={("volume", "iops"): 500_000} if over else None)
        reads_pg = 830 if over else 100
        tree.add(PG, "259:1", rios=reads_pg, rbytes=reads_pg * 4096)
        tree.add(NGINX, "259:1", rios=1000 - reads_pg, wios=100, rbytes=(1000 - reads_pg)
                 * 4096, wbytes=100 * 16384)

    def pod(builder, index):
        builder.advance(reads=10, writes=40)
        tree.add(POD_CONTAINER, "259:2", rios=10, wios=40, rbytes=40960, wbytes=655360)

    sources = [ScriptedSource(device("nvme1n1", "vol-0123456789abcdef0", "ebs"), None, busy),
               ScriptedSource(device("nvme2n1", "vol-0fedcba9876543210", "ebs"), None, pod)]
    return rig_with(tmp_path, sources)


def test_per_workload_counters_and_episode_shares_are_exact(tmp_path):
    rig = two_devices(tmp_path)
    rig.sampler.run(31)  # a baseline, then 30 intervals; the episode ended at 21
    labels = {"device": "nvme1n1", "serial": "vol-0123456789abcdef0", "kind": "ebs"}
    pg_reads = 830 * 14 + 100 * 16
    assert rig.value(m.WORKLOAD_READ_OPS, **labels, workload=PG) == pg_reads
    assert rig.value(m.WORKLOAD_READ_BYTES, **labels, workload=PG) == pg_reads * 4096
    assert rig.value(m.WORKLOAD_WRITE_OPS, **labels, workload=NGINX) == 100 * 30
    assert rig.value(m.WORKLOAD_READ_OPS, **labels, workload="other") == 0
    # Exceeded intervals: the device did 1100 ops a second, postgresql 830 of them.
    assert rig.value(m.WORKLOAD_EXCEEDED_SHARE, **labels, workload=PG) == 830 / 1100
    assert rig.value(m.WORKLOAD_EXCEEDED_SHARE, **labels, workload=NGINX) == 270 / 1100
    assert rig.value(m.WORKLOAD_EXCEEDED_SECONDS, **labels, workload=PG) == \
        pytest.approx(14 * 830 / 1100, rel=1e-12)
    assert rig.value(m.WORKLOAD_EXCEEDED_SECONDS, **labels, workload=NGINX) == \
        pytest.approx(14 * 270 / 1100, rel=1e-12)
    episode = rig.state.workloads.devices[("ebs", "vol-0123456789abcdef0")].episode
    assert episode.seconds == 14.0 and not episode.ongoing
    assert episode.top(1, which=0) == [(PG, 0.83)]
    pod = {"device": "nvme2n1", "serial": "vol-0fedcba9876543210", "kind": "ebs"}
    assert rig.value(m.WORKLOAD_WRITE_BYTES, **pod, workload=POD) == 655360 * 30
    assert rig.value(m.WORKLOAD_EXCEEDED_SHARE, **pod, workload=POD) is None  # never over
    assert promtool_check(rig.text()) == ""
    (ended,) = [e for e in rig.sampler.events.seen if e["state"] == "ended"]
    assert ended["device"] == "nvme1n1" and ended["intervals"] == 14
    assert ended["workloads"] == [
        {"workload": PG, "share": round(830 / 1100, 4), "read_share": 0.83, "write_share": 0.0},
        {"workload": NGINX, "share": round(270 / 1100, 4), "read_share": 0.17,
         "write_share": 1.0}]


def test_cardinality_stays_at_k_plus_one_with_500_cgroups(tmp_path):
    tree = CgroupTree(tmp_path / "cgroup")
    names = [f"system.slice/app{i:03d}.service" for i in range(500)]
    for name in names:
        tree.mkdir(name)

    def script(builder, index):
        builder.advance(reads=sum(range(1, 501)))
        for i, name in enumerate(names):
            tree.add(name, "259:1", rios=i + 1)

    rig = rig_with(tmp_path, [ScriptedSource(device("nvme1n1", "vol-1", "ebs"), None,
                                             script)], top=5)
    rig.sampler.run(11)
    series = [s for s in rig.samples() if s.name == m.WORKLOAD_READ_OPS]
    assert len(series) == 6
    by_name = {s.labels["workload"]: s.value for s in series}
    assert by_name[names[-1]] == 500 * 10
    assert by_name["other"] == sum(range(1, 496)) * 10
    assert rig.state.workloads.cgroups.reads == 500 * 11  # one read per cgroup per tick


def test_a_missed_read_keeps_the_workloads_growth_for_the_next_interval(tmp_path):
    import errno

    tree = CgroupTree(tmp_path / "cgroup")
    tree.mkdir(PG)

    def script(builder, index):
        builder.advance(reads=200 if index == 6 else 100)  # 6 covers the missed second
        tree.add(PG, "259:1", rios=100)

    def fail(index):
        if index != 5:
            return None
        tree.add(PG, "259:1", rios=100)  # the workload goes on while the read fails
        return errno.EIO

    source = ScriptedSource(device("nvme1n1", "vol-1", "ebs"), None, script, fail=fail)
    other = ScriptedSource(device("nvme2n1", "vol-2", "ebs"), None,
                           lambda b, i: b.advance(reads=1))
    rig = rig_with(tmp_path, [source, other])
    rig.sampler.run(11)
    labels = {"device": "nvme1n1", "serial": "vol-1", "kind": "ebs"}
    # The device's counter counts its first page from zero; the cgroup's first read is its
    # baseline: every interval after it is the same 1000 reads, the missed one included.
    assert rig.value(m.READ_OPS, **labels) == 100 + 1000
    assert rig.value(m.WORKLOAD_READ_OPS, **labels, workload=PG) == 1000
