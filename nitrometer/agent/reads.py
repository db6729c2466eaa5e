"""Reading real devices so that one hung in its ioctl never holds up the others.

The reads of a tick run in order on one worker: one wake-up per tick, not one per device.
A read still going after `stuck_after` is left to finish on its own (its device is skipped
until it does, and what it returns then is stale and dropped); the devices after it are
then read one worker each, within what is left of the tick's budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout

WORKERS = 16


class SlowRead(Exception):
    """A read still blocked (in the ioctl, or nvme-cli) when its time ran out."""

    reason = "timeout"


def read_once(source):
    """(raw, t), or the exception the read raised."""
    try:
        return source.read()
    except Exception as exc:
        return exc


class _InOrder:
    """One worker's pass over the due devices, watched by the sampler thread."""

    def __init__(self, due: list):
        self.due = due
        self.outcomes: list = []
        self.started_at: float | None = None  # when the read in progress began
        self.abandoned = False
        self.cond = threading.Condition()

    def run(self) -> None:
        for _key, source, _dev in self.due:
            with self.cond:
                if self.abandoned:
                    return
                self.started_at = time.monotonic()
            outcome = read_once(source)
            with self.cond:
                if self.abandoned:
                    return
                self.outcomes.append(outcome)
                self.cond.notify()


class ConcurrentReader:
    def __init__(self, workers: int = WORKERS):
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: dict[tuple[str, str], Future] = {}

    def busy(self, key: tuple[str, str]) -> bool:
        """A read of this device from an earlier tick has not come back yet."""
        return key in self._in_flight

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, fn, *args) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="nitrometer-read")
        return self._pool.submit(fn, *args)

    def _left_running(self, key, future: Future) -> None:
        self._in_flight[key] = future
        future.add_done_callback(lambda _f: self._in_flight.pop(key, None))

    def read_all(self, due: list, budget: float, stuck_after: float) -> Iterator[tuple]:
        """(entry, outcome) for each due (key, source, device) entry, as each comes back."""
        if not due:
            return
        start = time.monotonic()
        deadline = start + budget
        batch = _InOrder(due)
        future = self._submit(batch.run)
        done = 0
        while done < len(due):
            with batch.cond:
                while len(batch.outcomes) == done:
                    now = time.monotonic()
                    limit = min(deadline, (batch.started_at or start) + stuck_after)
                    if now >= limit:
                        batch.abandoned = True
                        break
                    batch.cond.wait(limit - now)
                ready = batch.outcomes[done:]
            for outcome in ready:
                yield due[done], outcome
                done += 1
            if batch.abandoned and done < len(due):
                stuck = due[done]
                self._left_running(stuck[0], future)
                yield stuck, SlowRead(f"read still blocked after {time.monotonic() - start:.2f}s")
                left = max(deadline - time.monotonic(), stuck_after)
                yield from self._one_worker_each(due[done + 1:], left)
                return

    def _one_worker_each(self, due: list, budget: float) -> Iterator[tuple]:
        pending = {self._submit(read_once, entry[1]): entry for entry in due}
        try:
            for future in as_completed(list(pending), timeout=budget):
                yield pending.pop(future), future.result()
        except FuturesTimeout:
            pass
        for future, entry in pending.items():
            if future.done():
                yield entry, future.result()
                continue
            self._left_running(entry[0], future)
            yield entry, SlowRead(f"read still blocked after {budget:.2f}s")
