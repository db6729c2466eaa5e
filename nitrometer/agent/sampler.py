"""The agent's sampling thread: the engine's ticks folded into AgentState, plus what only
the daemon needs (host CPU, instance hours, the systemd watchdog, the events file)."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time

from nitrometer.agent.events import EventSink
from nitrometer.agent.state import AgentState
from nitrometer.collectors.base import Clock
from nitrometer.sampling import Settings, TickResult, build_engine, engine_settings
from nitrometer.sampling.device import failure_reason

log = logging.getLogger("nitrometer.sampler")
# How long a thread holding the interpreter keeps it once another asks (CPython's default is
# 5 ms). Scrapes are served by a thread each: under many of them, a sampler waking at its
# deadline waits a switch interval for each thread that gets the interpreter before it.
SWITCH_INTERVAL = 0.0005


class Sampler:
    """Runs the engine over the sources `open_sources()` gives (once), or over what a
    DeviceWatcher finds (real devices that come and go)."""

    def __init__(self, state: AgentState, open_sources=None, *, settings: Settings | None = None,
                 interval: float = 1.0, clock: Clock | None = None,
                 events: EventSink | None = None, host=None, notifier=None, watcher=None,
                 threaded: bool = False, reader=None):
        self.state = state
        self.clock = clock or Clock()
        self.events = events or EventSink()
        self.host = host
        self.notifier = notifier
        self.reader = reader  # broker.Broker: the privileged reader's health and restarts
        self.workloads = None  # agent.workloads.WorkloadCollector, when that collector is on
        self._starving = False
        sources = open_sources() if open_sources is not None else []
        self.engine = build_engine(sources, settings=settings or engine_settings(
            interval=interval), clock=self.clock, threaded=threaded, watcher=watcher,
            limits_of=state.limits_of)
        self._last_tick: float | None = None
        self.last_tick_completed: float | None = None  # real monotonic time, for the watchdog
        self.stop_event = threading.Event()

    @property
    def interval(self) -> float:
        return self.engine.settings.interval

    def on_tick(self, result: TickResult) -> None:
        elapsed = 0.0 if self._last_tick is None else result.started - self._last_tick
        self._last_tick = result.started
        workloads = self.workloads
        read = workloads.read(result) if workloads is not None else None
        with self.state.lock:
            self.state.apply(result, self.engine.trackers)
            if read is not None:
                workloads.fold(read)
        # After the devices: a simulated host's CPU follows the IOs they just did.
        host = self.host.sample() if self.host is not None else {}
        with self.state.lock:
            self.state.host = host
            self.state.overruns = self.engine.overruns
            self.state.tick_errors = self.engine.tick_errors
            if self.reader is not None:
                self.state.reader_restarts = self.reader.restarts
            if self.state.instance is not None:
                self.state.instance.accrue(elapsed)
        for device, exc, first in result.failed:
            if first:  # once when a device starts failing, once when it is back
                log.warning("device %s (%s) failing (%s): %s; the other devices go on",
                            device.name, device.serial, failure_reason(exc), exc)
        for device in result.recovered:
            log.warning("device %s (%s) recovered: readable again", device.name, device.serial)
        if result.events:
            if workloads is not None:
                workloads.annotate(result.events)
            self.events.write(result.events)
        self._alive()
        for follow in self.state.after_tick:
            follow()

    def _alive(self) -> None:
        now = self.last_tick_completed = time.monotonic()
        if self.notifier is None or self._reader_silent(now):
            return
        self.notifier.watchdog(now)

    def _reader_silent(self, now: float) -> bool:
        """No reader answered for longer than the watchdog timeout while there are devices
        to read: the watchdog goes hungry and systemd restarts the service (the one cure
        when the keeper that starts readers is gone)."""
        timeout = getattr(self.notifier, "watchdog_timeout", None)
        if self.reader is None or timeout is None or not self.engine.trackers:
            self._starving = False
            return False
        silent = self.reader.silent_for(now)
        if silent <= timeout:
            self._starving = False
            return False
        if not self._starving:
            log.error("no privileged reader has answered for %.0fs: no longer feeding the "
                      "systemd watchdog, so that systemd restarts the service", silent)
            self._starving = True
        return True

    def run(self, ticks: int | None = None, stop: threading.Event | None = None) -> int:
        """Tick on the schedule until stopped or `ticks` are done; returns ticks done."""
        done = self.engine.run(self.on_tick, stop or self.stop_event, ticks)
        with self.state.lock:  # errors in the tick itself are counted too
            if self.state.tick_errors != self.engine.tick_errors:
                self.state.tick_errors = self.engine.tick_errors
                self.state.version += 1
        return done

    def start(self) -> threading.Thread:
        """The sampling thread, and the interpreter set up for a daemon that must keep time
        under load: a short switch interval, and what start-up built (modules, config,
        devices) out of the collector's way, so a full collection that lands on a tick
        walks only what was made since, not the whole heap."""
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        gc.freeze()
        thread = threading.Thread(target=self.run, name="nitrometer-sampler", daemon=True)
        thread.start()
        return thread

    def interrupt(self) -> None:
        """Stopping: a tick waiting for reads returns at once."""
        self.stop_event.set()
        if self.engine.reads is not None:
            self.engine.reads.close()

    def close(self) -> None:
        """Stop reading (never waiting on a hung device) and write the open episodes."""
        self.events.write(self.engine.close())

    def healthy(self, within: float) -> bool:
        """Whether a tick completed in the last `within` real seconds."""
        last = self.last_tick_completed
        return last is not None and time.monotonic() - last <= within
