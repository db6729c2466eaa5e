"""What the benchmarks measure with: a whole service's CPU and memory, growing fake devices,
reading an exposition. Amounts of work are fixed in CPU time, so no timing is asserted."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from benchmarks.common import ServiceUsage
from benchmarks.fleet import (
    MEMORY_FS,
    READS_PER_SECOND,
    FakeFleet,
    growing_pages,
    samples_of,
    series,
)
from nitrometer import devicecore

# A service in three generations: the main process forks a child on "fork", the child
# forks a grandchild that waits; on "burn" the grandchild spends 0.3 s of CPU and ends.
SERVICE = r"""
import os, sys, time
os.read(0, 5)
if os.fork() == 0:
    grandchild = os.fork()
    if grandchild == 0:
        os.read(0, 5)
        while time.process_time() < 0.3:
            pass
        os._exit(0)
    print("forked", flush=True)
    os.waitpid(grandchild, 0)
    print("burnt", flush=True)
    time.sleep(120)
    os._exit(0)
time.sleep(120)
"""


def test_service_usage_follows_forked_processes_and_counts_those_that_ended():
    proc = subprocess.Popen([sys.executable, "-c", SERVICE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    usage = ServiceUsage(proc.pid)
    try:
        usage.sample()
        assert [p.depth for p in usage.processes.values()] == [0]
        proc.stdin.write("fork\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "forked\n"
        usage.sample()
        depths = sorted(p.depth for p in usage.processes.values())
        assert depths == [0, 1, 2]
        assert [p.seen_from_start for p in usage.processes.values()] == [True, False, False]
        assert len(usage.rss) == 2 and usage.rss[1] > usage.rss[0]  # three processes' RSS
        assert 0 < usage.pss[1] <= usage.rss[1]  # shared pages split, not counted thrice
        proc.stdin.write("burn\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "burnt\n"
        usage.sample()
        # The grandchild's 0.3 s were spent after it was last seen and it has ended: they
        # count through the child that waited for it (CPU time is counted in 10 ms ticks).
        assert usage.cpu_seconds() >= 0.28
        assert usage.ended_cpu_seconds() >= 0.28
        assert usage.intervals == 2 and usage.seconds > 0
        assert usage.peak_rss() >= usage.rss[-1] > 0
    finally:
        proc.kill()
        proc.wait()
        for p in usage.processes.values():
            if p.depth == 1:
                try:
                    os.kill(p.pid, 9)
                except ProcessLookupError:
                    pass


def test_fake_devices_grow_by_one_second_of_load_per_page_without_a_glitch():
    pages = growing_pages(3, 40)
    guard = devicecore.Guard(1e7, 2e10)
    reads = []
    for second, raw in enumerate(pages):
        page, summary = guard.sample(raw, float(second))
        assert summary.baseline == (second == 0)
        assert not (summary.held or summary.reset or summary.glitches or summary.dropped)
        reads.append(page.to_dict()["total_read_ops"])
        if second:
            assert summary.delta.to_dict()["total_read_ops"] == READS_PER_SECOND
            bands = summary.band_read_ops
            assert len(bands) == 5 and all(ops > 0 for ops in bands)
    assert reads[-1] - reads[0] == 39 * READS_PER_SECOND
    # Devices differ in age, so no two show the same counters.
    assert growing_pages(4, 1)[0] != pages[0]


def test_an_exposition_is_read_as_prometheus_would():
    text = (
        "# HELP ec2_nvme_read_ops Read operations.\n"
        "# TYPE ec2_nvme_read_ops counter\n"
        'ec2_nvme_read_ops_total{device="nvme1n1",model="a } b \\" c"} 12.0\n'
        'ec2_nvme_read_ops_total{device="nvme2n1"} 3 # {trace_id="1"} 1\n'
        "ec2_nvme_read_ops_created 1.7e9\n"
        "nitrometer_poll_duration_seconds_count 5 1700000000\n"
        "# EOF\n"
    )
    assert series(text, "ec2_nvme_read_ops_total") == {
        '{device="nvme1n1",model="a } b \\" c"}': 12.0, '{device="nvme2n1"}': 3.0}
    assert series(text, "nitrometer_poll_duration_seconds_count") == {"": 5.0}
    assert series(text, "ec2_nvme_read_ops") == {}
    assert samples_of(text) == 4


def test_a_fake_fleet_keeps_its_devices_in_memory_and_removes_them_with_itself(tmp_path):
    fleet = FakeFleet(tmp_path / "fleet", tmp_path / "fakenvme.so", 2, seconds=3)
    files = (tmp_path / "fleet" / "fake").resolve()
    assert fleet.positions() == [0, 0]
    assert len(list(files.glob("dev*/log-d0.*.bin"))) == 2 * 3
    if MEMORY_FS.is_dir() and os.access(MEMORY_FS, os.W_OK):
        assert files.parent == MEMORY_FS  # a page read rewrites a file: not on a disk
        del fleet
        gc.collect()
        assert not files.exists()
