"""Per-device read workers: a slow read is kept for the next tick, a hung one isolates only
its own device, and at most one read per device is ever in flight."""

from __future__ import annotations

import threading
import time

import pytest

from nitrometer.sampling.polled import PolledReads
from nitrometer.sampling.reads import ThreadedReads

# Sources that block in their read get a worker in either (the poller hands them over).
pytestmark = pytest.mark.parametrize("kind", [ThreadedReads, PolledReads])


class Source:
    def __init__(self, name, *, block: threading.Event | None = None, delay=0.0, fail=None):
        self.name, self.block, self.delay, self.fail = name, block, delay, fail
        self.started = 0
        self.in_flight = 0
        self.most_in_flight = 0

    def read(self):
        self.started += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.block is not None:
                self.block.wait(30)
            time.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
            return (f"{self.name}:{self.started}".encode(), time.monotonic())
        finally:
            self.in_flight -= 1


def key(source):
    return ("instance_store", source.name)


def reads_of(kind, *sources):
    reads = kind()
    for s in sources:
        reads.add(key(s), s)
    return reads


def test_answers_within_the_budget_come_back_in_the_same_tick(kind):
    sources = [Source(f"nvme{i}n1", delay=0.05) for i in range(20)]
    reads = reads_of(kind, *sources)
    for s in sources:
        assert reads.request(key(s))
    out = reads.collect([key(s) for s in sources], time.monotonic() + 5)
    assert {k: v[0] for k, v in out.items()} == {key(s): f"{s.name}:1".encode()
                                                 for s in sources}
    reads.close()


def test_a_late_answer_is_kept_for_the_next_collect_not_dropped(kind):
    slow = Source("nvme1n1", delay=0.3)
    reads = reads_of(kind, slow)
    reads.request(key(slow))
    assert reads.collect([key(slow)], time.monotonic() + 0.05) == {}
    assert reads.in_flight(key(slow)) is not None
    assert not reads.request(key(slow))  # one read in flight per device, never two
    deadline = time.monotonic() + 10
    while reads.in_flight(key(slow)) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    out = reads.collect([key(slow)], time.monotonic())
    assert out[key(slow)][0] == b"nvme1n1:1"
    assert slow.started == 1 and slow.most_in_flight == 1
    reads.close()


def test_many_hung_devices_never_starve_the_healthy_ones(kind):
    release = threading.Event()
    hung = [Source(f"nvme{i}n1", block=release) for i in range(40)]
    healthy = [Source(f"nvme{i}n1") for i in range(40, 44)]
    failing = Source("nvme44n1", fail=OSError(5, "Input/output error"))
    reads = reads_of(kind, *hung, *healthy, failing)
    everyone = hung + healthy + [failing]
    for _tick in range(3):
        for s in everyone:
            reads.request(key(s))
        out = reads.collect([key(s) for s in everyone], time.monotonic() + 1)
        assert all(key(s) in out and not isinstance(out[key(s)], Exception) for s in healthy)
        assert isinstance(out[key(failing)], OSError)
        assert not any(key(s) in out for s in hung)
    assert all(s.started == 1 for s in hung)  # never asked again while in flight
    assert all(s.started == 3 for s in healthy)
    release.set()
    reads.close()
