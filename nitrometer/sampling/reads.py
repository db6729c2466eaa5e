"""Reading real devices so that a slow or hung one never holds up the others.

At most one read per device is ever in flight. The engine asks every due device at the
start of a tick and waits for the answers until the tick's budget; a read that finishes
later is used at the next tick, not dropped (its page carries the time it was read).
Nothing here ever waits for a hung read to end.

Devices read through the privileged reader are polled (PolledReads): a request per due
device goes out without waiting, the replies come back in batches, and the engine wakes
once per batch. Other sources (nvme-cli, an ioctl from this process) block in their read,
so each has its own worker thread (ThreadedReads): a device hung in its ioctl ties up only
its own thread, however many hang.
"""

from __future__ import annotations

import threading
import time


def read_once(source):
    """(raw, t), or the exception the read raised."""
    try:
        return source.read()
    except Exception as exc:
        return exc


class _Worker:
    __slots__ = ("source", "thread", "wake", "busy_since", "outcome", "closed")

    def __init__(self, source):
        self.source = source
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()  # one per worker: a request wakes only its own thread
        self.busy_since: float | None = None  # real monotonic time the read started
        self.outcome = None  # a finished read not yet collected
        self.closed = False


class ThreadedReads:
    """Per-device workers, all reporting to one condition the engine waits on."""

    def __init__(self, cond: threading.Condition | None = None):
        self.cond = cond or threading.Condition()
        self._workers: dict = {}
        self.closed = False

    def add(self, key, source) -> None:
        with self.cond:
            self._workers[key] = _Worker(source)

    def remove(self, key) -> None:
        """Forget a device; a read still in flight finishes on its own and is dropped."""
        with self.cond:
            worker = self._workers.pop(key, None)
            if worker is not None:
                worker.closed = True
                worker.wake.set()

    def in_flight(self, key) -> float | None:
        """Since when (real monotonic) a read of this device has been running, or None."""
        worker = self._workers.get(key)
        return None if worker is None else worker.busy_since

    def request(self, key) -> bool:
        """Start a read unless one is in flight or an answer waits; True when started."""
        with self.cond:
            worker = self._workers.get(key)
            if worker is None or worker.busy_since is not None or worker.outcome is not None:
                return False
            worker.busy_since = time.monotonic()
            worker.wake.set()
            if worker.thread is None:
                worker.thread = threading.Thread(target=self._run, args=(worker,),
                                                 name=f"nitrometer-read-{key[1]}", daemon=True)
                worker.thread.start()
            return True

    def collect(self, keys, deadline: float) -> dict:
        """Outcomes of the given devices: wait for the pending ones until deadline (real
        monotonic), then return every answer that is in, including late ones."""
        keys = list(keys)
        with self.cond:
            while self.waiting(keys) and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return self.take(keys)

    def waiting(self, keys) -> bool:
        """Whether a read of any of these devices is in flight (hold `cond`)."""
        workers = self._workers
        return any(k in workers and workers[k].busy_since is not None for k in keys)

    def take(self, keys) -> dict:
        """The finished reads of these devices, handed over once (hold `cond`)."""
        out = {}
        for key in keys:
            worker = self._workers.get(key)
            if worker is not None and worker.outcome is not None:
                out[key], worker.outcome = worker.outcome, None
        return out

    def close(self) -> None:
        """Wakes a waiting collect() and retires every worker; none is waited for."""
        with self.cond:
            self.closed = True
            for worker in self._workers.values():
                worker.closed = True
                worker.wake.set()
            self._workers.clear()
            self.cond.notify_all()

    def _run(self, worker: _Worker) -> None:
        while True:
            worker.wake.wait()
            worker.wake.clear()
            if worker.closed:
                return
            outcome = read_once(worker.source)
            with self.cond:
                if worker.closed:
                    return
                worker.outcome = outcome
                worker.busy_since = None
                self.cond.notify_all()
