"""Concurrent device reads: one worker per tick, and a hung read never holds up the rest."""

from __future__ import annotations

import threading
import time

from nitrometer.agent.reads import ConcurrentReader, SlowRead


class Source:
    def __init__(self, name, *, block: threading.Event | None = None, fail=None):
        self.name, self.block, self.fail = name, block, fail
        self.threads = []

    def read(self):
        self.threads.append(threading.get_ident())
        if self.block is not None:
            self.block.wait(10)
        if self.fail is not None:
            raise self.fail
        return (self.name.encode(), time.monotonic())

    def close(self):
        pass


def entries(*sources):
    return [((s.name, "serial-" + s.name), s, None) for s in sources]


def test_healthy_devices_are_read_in_order_on_one_worker():
    reader = ConcurrentReader()
    sources = [Source(f"nvme{i}n1") for i in range(6)]
    out = list(reader.read_all(entries(*sources), budget=0.8, stuck_after=0.1))
    assert [outcome[0] for _, outcome in out] == [s.name.encode() for s in sources]
    assert len({t for s in sources for t in s.threads}) == 1
    reader.close()


def test_a_hung_read_is_left_running_and_the_rest_still_come_back():
    reader = ConcurrentReader()
    release = threading.Event()
    hung = Source("nvme1n1", block=release)
    before, after = Source("nvme0n1"), [Source(f"nvme{i}n1") for i in range(2, 6)]
    failing = Source("nvme6n1", fail=OSError(5, "Input/output error"))
    due = entries(before, hung, *after, failing)
    started = time.monotonic()
    out = dict((entry[0][0], outcome) for entry, outcome in
               reader.read_all(due, budget=0.8, stuck_after=0.1))
    assert time.monotonic() - started < 0.8
    assert isinstance(out["nvme1n1"], SlowRead) and out["nvme1n1"].reason == "timeout"
    assert all(out[s.name][0] == s.name.encode() for s in [before, *after])
    assert isinstance(out["nvme6n1"], OSError)
    assert reader.busy(("nvme1n1", "serial-nvme1n1"))
    assert not reader.busy(("nvme0n1", "serial-nvme0n1"))

    release.set()
    deadline = time.monotonic() + 5
    while reader.busy(("nvme1n1", "serial-nvme1n1")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not reader.busy(("nvme1n1", "serial-nvme1n1"))
    # Abandoned, the first worker read nothing after the hung device.
    assert all(len(s.threads) == 1 for s in after)
    reader.close()
