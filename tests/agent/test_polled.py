"""Devices read through the privileged reader are polled: every due device's request goes
out at once and one thread takes all the replies. A hung device holds back none of the
others, a late page is kept for the next tick, a reader lost or silent with reads in
flight fails them (EIO) and is replaced."""

from __future__ import annotations

import textwrap

import pytest

from devkit.fakedev import MODEL_EBS, identify_bytes
from devkit.fakedev.pages import ebs_page

DEVICES = 16


@pytest.fixture
def dev(fake, tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    for i in range(DEVICES):
        fake.add(f"{dev}/nvme{i}n1", page=ebs_page(),
                 identify=identify_bytes(f"vol{i:017d}", MODEL_EBS))
    return dev


def poll_script(dev, body: str, stuck_after: float = 300.0) -> str:
    return textwrap.dedent(f"""\
        import os, signal, threading, time
        from nitrometer.broker import start_broker
        from nitrometer.collectors.base import KIND_EBS, Device
        from nitrometer.collectors.ioctl_source import IoctlSource
        from nitrometer.sampling.polled import PolledReads
        broker = start_broker({str(dev)!r}, stuck_after={stuck_after})
        reads = PolledReads()
        keys = []
        for i in range({DEVICES}):
            device = Device(f"nvme{{i}}n1", {str(dev)!r} + f"/nvme{{i}}n1", KIND_EBS,
                            f"vol{{i:017d}}", "Amazon Elastic Block Store")
            keys.append(device.name)
            reads.add(device.name, IoctlSource(device, admin=broker))
        def tick(budget=1.0):
            asked = [k for k in keys if reads.request(k)]
            return asked, reads.collect(keys, time.monotonic() + budget)
        def what(outcome):
            if isinstance(outcome, BaseException):
                return f"{{type(outcome).__name__}}:{{getattr(outcome, 'errno', None)}}"
            return len(outcome[0])
        """) + textwrap.dedent(body)


def test_one_thread_polls_every_device_and_a_hung_one_holds_back_none(fake, dev):
    fake.fail(f"{dev}/nvme3n1", "hang=6000")
    fake.fail(f"{dev}/nvme5n1", "status=4002")
    # The hang outlasts stuck_after, but the others answer: the reader is not replaced.
    code = poll_script(dev, """
        for n in range(3):
            asked, out = tick()
            print("tick", n, len(asked), sorted({what(o) for o in out.values()}, key=str),
                  "nvme3n1" in out, reads.in_flight("nvme3n1") is not None)
            time.sleep(0.5)
        print("threads", threading.active_count())
        deadline = time.monotonic() + 20
        while reads.in_flight("nvme3n1") is not None and time.monotonic() < deadline:
            reads.collect([], time.monotonic() + 0.1)
            time.sleep(0.1)
        out = reads.collect(keys, time.monotonic())
        print("late", what(out["nvme3n1"]), broker.restarts, reads.request("nvme3n1"))
        """, stuck_after=2.0)
    done = fake.python(code, timeout=90)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # Tick 0 asks all; later ticks ask all but the hung device and the waiting ones.
    assert lines[0] == "tick 0 16 [4096, 'NvmeStatusReadError:None'] False True", lines
    for line in lines[1:3]:
        assert line.split()[3:] == ["[4096,", "'NvmeStatusReadError:None']", "False", "True"]
        assert line.split()[2] == "15"  # the hung device is not asked twice
    # Sixteen devices, one poller: this thread, the replies' thread, the keeper's watch.
    assert int(lines[3].split()[1]) <= 3, lines
    assert lines[4] == "late 4096 0 True", lines
    timeouts = {c["timeout_ms"] for c in fake.commands(f"{dev}/nvme3n1")}
    assert timeouts == {0}  # no admin command with a short timeout


def test_a_reader_lost_with_reads_in_flight_fails_them_and_is_replaced(fake, dev):
    fake.fail(f"{dev}/nvme3n1", "hang=20000")
    code = poll_script(dev, """
        tick()
        first = broker.pid
        os.kill(first, signal.SIGKILL)
        out = reads.collect(keys, time.monotonic() + 10)
        print("lost", what(out["nvme3n1"]))
        deadline = time.monotonic() + 20
        while (broker.pid in (None, first)) and time.monotonic() < deadline:
            time.sleep(0.05)
        asked, out = tick(budget=5.0)
        print("replaced", broker.restarts, what(out["nvme0n1"]))
        """)
    done = fake.python(code, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["lost DeviceIOError:5", "replaced 1 4096"]


def test_a_silent_reader_is_replaced_and_its_reads_fail(fake, dev):
    code = poll_script(dev, """
        tick()
        first = broker.pid
        os.kill(first, signal.SIGSTOP)
        reads.request("nvme0n1")
        outcome, silent = None, 0.0
        deadline = time.monotonic() + 20
        while outcome is None and time.monotonic() < deadline:
            silent = max(silent, broker.silent_for())
            outcome = reads.collect(["nvme0n1"], time.monotonic() + 0.25).get("nvme0n1")
        print("failed", what(outcome), silent >= 1.0)
        deadline = time.monotonic() + 20
        while broker.pid in (None, first) and time.monotonic() < deadline:
            time.sleep(0.05)
        asked, out = tick(budget=5.0)
        print("replaced", broker.restarts, len(out), what(out["nvme0n1"]))
        """, stuck_after=2.0)
    done = fake.python(code, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["failed DeviceIOError:5 True",
                                        f"replaced 1 {DEVICES} 4096"]
    assert "gave no answer for 2s: killed" in done.stderr


class Polled:
    """A source read through a broker: its requests are kept, replies given by the test."""

    def __init__(self, name, fail: Exception | None = None):
        self.name, self.fail = name, fail
        self.poller = self  # what the reads ask to replace a silent reader
        self.sent: list = []
        self.stuck_checks = 0

    def submit_read(self, sink, token):
        if self.fail is not None:
            raise self.fail
        self.sent.append((sink, token))

    def outcome_of(self, kind, code, data):
        return (data, 1.0) if kind == 0 else OSError(code, "failed")

    def replace_if_stuck(self):
        self.stuck_checks += 1


def test_the_waiting_tick_is_woken_once_by_the_last_reply_not_per_device():
    import threading
    import time

    from nitrometer.sampling.polled import PolledReads

    sources = [Polled(f"nvme{i}n1") for i in range(3)]
    reads = PolledReads()
    for s in sources:
        reads.add(s.name, s)
    notified = []
    notify_all = reads.cond.notify_all
    reads.cond.notify_all = lambda: (notified.append(1), notify_all())
    assert all(reads.request(s.name) for s in sources)
    assert not reads.request("nvme0n1")  # one read in flight per device
    out = {}
    collector = threading.Thread(target=lambda: out.update(
        reads.collect([s.name for s in sources], time.monotonic() + 30)))
    collector.start()
    for i, s in enumerate(sources):  # three batches, as replies trickle in
        sink, token = s.sent[0]
        sink.deliver([(token, 0, 0, f"page{i}".encode())])
    collector.join(30)
    assert not collector.is_alive()
    assert {k: v[0] for k, v in out.items()} == {
        "nvme0n1": b"page0", "nvme1n1": b"page1", "nvme2n1": b"page2"}
    assert len(notified) == 1
    assert sources[0].stuck_checks == 1  # the silent-reader check runs with every collect


def test_a_reply_for_a_removed_device_is_dropped_and_a_refused_send_fails_the_read():
    import time

    from nitrometer.sampling.polled import PolledReads

    gone, refused = Polled("nvme0n1"), Polled("nvme1n1", fail=OSError(5, "no reader"))
    reads = PolledReads()
    reads.add(gone.name, gone)
    reads.add(refused.name, refused)
    assert reads.request(gone.name) and reads.request(refused.name)
    reads.remove(gone.name)
    reads.add(gone.name, gone)  # the same name again (a renamed node): a new read
    sink, token = gone.sent[0]
    sink.deliver([(token, 0, 0, b"stale")])
    out = reads.collect([gone.name, refused.name], time.monotonic())
    assert list(out) == [refused.name] and isinstance(out[refused.name], OSError)
    assert reads.in_flight(gone.name) is None and reads.request(gone.name)
