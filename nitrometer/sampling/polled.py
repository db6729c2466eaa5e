"""One poller for every device the privileged reader reads: no thread per device.

A tick sends one request per due device without waiting (the source's `submit_read`),
then waits on one condition until the replies are in or the tick's budget is spent. The
broker's receiving thread hands over every reply ready at once in one `deliver` call, and
the waiting tick is woken once, by the last reply, rather than once per device.
"""

from __future__ import annotations

import threading
import time

from nitrometer.sampling.reads import ThreadedReads


class _Slot:
    __slots__ = ("source", "busy_since", "outcome", "closed")

    def __init__(self, source):
        self.source = source
        self.busy_since: float | None = None  # real monotonic time the request went out
        self.outcome = None  # a finished read not yet collected
        self.closed = False  # removed: a reply still on its way is dropped


def pollable(source) -> bool:
    """A source whose read can be sent without waiting (through the broker)."""
    return getattr(source, "poller", None) is not None


class PolledReads:
    """The interface of ThreadedReads; sources that cannot be polled get its workers."""

    def __init__(self):
        self.cond = threading.Condition()
        self._threaded = ThreadedReads(self.cond)
        self._slots: dict = {}
        self.closed = False

    def add(self, key, source) -> None:
        if not pollable(source):
            self._threaded.add(key, source)
            return
        with self.cond:
            self._slots[key] = _Slot(source)

    def remove(self, key) -> None:
        """Forget a device; a reply still on its way is dropped."""
        with self.cond:
            slot = self._slots.pop(key, None)
            if slot is not None:
                slot.closed = True
        self._threaded.remove(key)

    def in_flight(self, key) -> float | None:
        """Since when (real monotonic) a read of this device has been running, or None."""
        slot = self._slots.get(key)
        return self._threaded.in_flight(key) if slot is None else slot.busy_since

    def request(self, key) -> bool:
        """Send a read unless one is in flight or an answer waits; True when sent."""
        with self.cond:
            slot = self._slots.get(key)
            if slot is None:
                return self._threaded.request(key)
            if slot.busy_since is not None or slot.outcome is not None or self.closed:
                return False
            slot.busy_since = time.monotonic()
        try:
            slot.source.submit_read(self, slot)
        except Exception as exc:  # not sent: the device fails this tick, as a read would
            with self.cond:
                if not slot.closed:
                    slot.outcome, slot.busy_since = exc, None
        return True

    def deliver(self, replies: list) -> None:
        """The broker's replies, `(slot, kind, code, data)`. The waiting tick is woken when
        the last reply is in, not for each: until then it has nothing to do before its
        deadline anyway."""
        done = [(slot, slot.source.outcome_of(kind, code, data))
                for slot, kind, code, data in replies]
        with self.cond:
            for slot, outcome in done:
                if not slot.closed:
                    slot.outcome, slot.busy_since = outcome, None
            if not any(slot.busy_since is not None for slot in self._slots.values()):
                self.cond.notify_all()

    def collect(self, keys, deadline: float) -> dict:
        """Outcomes of the given devices: wait for the pending ones until deadline (real
        monotonic), then return every answer that is in, including late ones."""
        keys = list(keys)
        for poller in {slot.source.poller for slot in list(self._slots.values())}:
            poller.replace_if_stuck()
        with self.cond:
            while (self._waiting(keys) or self._threaded.waiting(keys)) and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            out = self._threaded.take(keys)
            for key in keys:
                slot = self._slots.get(key)
                if slot is not None and slot.outcome is not None:
                    out[key], slot.outcome = slot.outcome, None
            return out

    def _waiting(self, keys) -> bool:
        slots = self._slots
        return any(k in slots and slots[k].busy_since is not None for k in keys)

    def close(self) -> None:
        """Wakes a waiting collect(); replies still on their way are dropped."""
        with self.cond:
            self.closed = True
            for slot in self._slots.values():
                slot.closed = True
            self._slots.clear()
        self._threaded.close()
