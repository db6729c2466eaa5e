"""The cgroup reader: io.stat parsing, which cgroups are workloads and their labels, deltas."""

from __future__ import annotations

from devkit.cgroupfs import (
    CGROUPFS_CONTAINER,
    CGROUPFS_POD_UID,
    CONTAINER_ID,
    DOCKER_SCOPE,
    POD_CONTAINER,
    POD_SLICE,
    POD_UID,
    CgroupTree,
    write_devnums,
)
from nitrometer.collectors.base import Device
from nitrometer.collectors.cgroups import (
    CgroupIO,
    find_workloads,
    io_controller_mounted,
    parse_io_stat,
    sysfs_devnum,
    workload_of,
)

DEV = "259:1"


def test_parses_the_documented_example():
    # The example in Documentation/admin-guide/cgroup-v2.rst, "io.stat".
    text = ("8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n"
            "8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 "
            "dios=3021\n")
    assert parse_io_stat(text) == {"8:16": (192, 353, 1459200, 314773504),
                                   "8:0": (8950, 1252, 90430464, 299008000)}
    assert parse_io_stat("\n259:0\nbogus\n") == {"259:0": (0, 0, 0, 0)}


def test_io_controller_detected(tmp_path):
    assert io_controller_mounted(str(CgroupTree(tmp_path / "a").root))
    assert not io_controller_mounted(str(CgroupTree(tmp_path / "b", "cpu memory").root))
    assert not io_controller_mounted(str(tmp_path / "none"))


def test_workloads_are_the_deepest_matching_cgroups(tmp_path):
    tree = CgroupTree(tmp_path)
    for path in ("system.slice/postgresql.service", "system.slice/sshd.service",
                 "system.slice/nginx.service/worker",  # not a unit: nginx counts whole
                 "user.slice/user-1000.slice/user@1000.service/app.slice/editor.service",
                 "user.slice/user-1000.slice/session-3.scope",
                 POD_CONTAINER, CGROUPFS_CONTAINER, DOCKER_SCOPE, "init.scope",
                 "machine.slice/vm.scope"):
        tree.mkdir(path)
    names = [w.name for w in find_workloads(str(tmp_path))]
    assert names == [
        f"pod/{POD_UID}/{CONTAINER_ID[:12]}",  # in path order: kubepods.slice first
        f"pod/{CGROUPFS_POD_UID}/{'ab' * 6}",
        f"docker/{'cd' * 6}",
        "system.slice/nginx.service",
        "system.slice/postgresql.service",
        "system.slice/sshd.service",
        "user.slice/user-1000.slice/session-3.scope",
        "user.slice/user-1000.slice/user@1000.service/app.slice/editor.service",
    ]
    # Depth and patterns are settings.
    shallow = find_workloads(str(tmp_path), depth=2)
    assert [w.name for w in shallow] == [f"docker/{'cd' * 6}", "system.slice/nginx.service",
                                        "system.slice/postgresql.service",
                                        "system.slice/sshd.service"]
    only = find_workloads(str(tmp_path), patterns=("system.slice/p*",))
    assert [w.name for w in only] == ["system.slice/postgresql.service"]


def test_pod_labels_from_both_cgroup_drivers():
    slice_ = workload_of(POD_CONTAINER)
    assert (slice_.pod_uid, slice_.container_id) == (POD_UID, CONTAINER_ID)
    pod_only = workload_of(POD_SLICE)
    assert pod_only.name == f"pod/{POD_UID}" and pod_only.container_id == ""
    cgroupfs = workload_of(CGROUPFS_CONTAINER)
    assert cgroupfs.name == f"pod/{CGROUPFS_POD_UID}/abababababab"
    guaranteed = workload_of(f"kubepods.slice/kubepods-pod{POD_UID.replace('-', '_')}.slice")
    assert guaranteed.pod_uid == POD_UID
    assert workload_of("docker/" + "ef" * 32).name == "docker/efefefefefef"


def test_deltas_per_device_and_workload(tmp_path):
    tree = CgroupTree(tmp_path)
    tree.add("system.slice/a.service", DEV, rios=100, wios=5, rbytes=409600, wbytes=20480)
    tree.add("system.slice/a.service", "8:0", rios=7)
    tree.add("system.slice/b.service", DEV, rios=1)
    io = CgroupIO(str(tmp_path))
    assert io.tick({DEV}) == {DEV: {}}  # the first sight is the baseline
    tree.add("system.slice/a.service", DEV, rios=30, wios=2, rbytes=122880, wbytes=8192)
    tree.add("system.slice/a.service", "8:0", rios=1000)  # not a watched device
    tree.add("system.slice/b.service", DEV, wios=4, wbytes=16384)
    assert io.tick({DEV}) == {DEV: {"system.slice/a.service": (30, 2, 122880, 8192),
                                    "system.slice/b.service": (0, 4, 0, 16384)}}
    assert io.reads == 4  # one read per cgroup per tick


def test_a_recreated_cgroup_counts_from_its_new_value(tmp_path):
    tree = CgroupTree(tmp_path)
    tree.add("system.slice/a.service", DEV, rios=1000)
    io = CgroupIO(str(tmp_path))
    io.tick({DEV})
    tree.recreate("system.slice/a.service")
    tree.add("system.slice/a.service", DEV, rios=10)
    assert io.tick({DEV}) == {DEV: {}}
    tree.add("system.slice/a.service", DEV, rios=3)
    assert io.tick({DEV}) == {DEV: {"system.slice/a.service": (3, 0, 0, 0)}}


def test_cgroups_that_come_and_go(tmp_path):
    tree = CgroupTree(tmp_path)
    tree.add("system.slice/a.service", DEV, rios=1)
    io = CgroupIO(str(tmp_path), rescan_every=2)
    io.tick({DEV})
    tree.add("system.slice/b.service", DEV, rios=1)  # found at the next rescan
    io.tick({DEV})
    io.tick({DEV})  # rescan: b's baseline
    tree.add("system.slice/b.service", DEV, rios=2)
    assert io.tick({DEV}) == {DEV: {"system.slice/b.service": (2, 0, 0, 0)}}
    (tmp_path / "system.slice/a.service/io.stat").unlink()
    (tmp_path / "system.slice/a.service").rmdir()
    io.tick({DEV})
    assert [w.name for w in io.workloads] == ["system.slice/b.service"]


def test_devnum_from_sysfs(tmp_path):
    write_devnums(tmp_path, {"nvme1n1": "259:3"})
    dev = Device("nvme1n1", "/dev/nvme1n1", "ebs", "vol-1", "m", controller="nvme1")
    assert sysfs_devnum(str(tmp_path), dev) == "259:3"
    other = Device("nvme2n1", "/dev/nvme2n1", "ebs", "vol-2", "m", controller="nvme2")
    assert sysfs_devnum(str(tmp_path), other) is None


def test_a_device_that_comes_back_starts_a_baseline(tmp_path):
    tree = CgroupTree(tmp_path)
    tree.add("system.slice/a.service", DEV, rios=1)
    tree.add("system.slice/a.service", "259:2", rios=1)
    io = CgroupIO(str(tmp_path))
    io.tick({DEV, "259:2"})
    tree.add("system.slice/a.service", "259:2", rios=5)
    assert io.tick({DEV}) == {DEV: {}}  # 259:2 is gone for now
    tree.add("system.slice/a.service", "259:2", rios=50)  # while nobody watched it
    assert io.tick({DEV, "259:2"}) == {DEV: {}, "259:2": {}}  # back: a new baseline
    tree.add("system.slice/a.service", "259:2", rios=2)
    tree.add("system.slice/a.service", DEV, rios=3)
    assert io.tick({DEV, "259:2"}) == {DEV: {"system.slice/a.service": (3, 0, 0, 0)},
                                       "259:2": {"system.slice/a.service": (2, 0, 0, 0)}}
    assert io.tick(set()) == {}
