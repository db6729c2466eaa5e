"""One device as the engine sees it: its source, its baseline page, and the rules for what a
new page means (first page, reset, layout change, glitch, failure and backoff)."""

from __future__ import annotations

import errno
import logging

from nitrometer import devicecore, ec2, native
from nitrometer.errors import DeviceError
from nitrometer.sampling.episodes import EpisodeTracker
from nitrometer.sampling.interval import QUANTILES, Interval

log = logging.getLogger("nitrometer.sampling")

DEFAULT_BOUNDS = (ec2.CEILING_OPS_PER_S, ec2.CEILING_BYTES_PER_S)
# Pages held this many times in a row mean the bounds are too tight for this device: they
# are raised (to the ceilings at most), so a device's counts are never held for good.
HELD_IN_A_ROW = 3
MAX_BACKOFF = 30.0  # seconds between retries of a device that keeps failing
# Step flags that need more than a record: counts, logs, or no record at all.
_UNUSUAL = (native.lib.NM_DELTA_RESET | native.lib.NM_DELTA_GLITCH | native.lib.NM_DELTA_HELD
            | native.lib.NM_DELTA_DROPPED | native.lib.NM_DELTA_BASELINE)


def failure_reason(exc: BaseException) -> str:
    """A short, stable label for the errors metric."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, native.PageError):
        return "bad_page"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, "oserror").lower()
    return "other"


class BadPage(DeviceError):
    """A page the decoder refused, said in one line naming the device."""

    reason = "bad_page"


def bad_page(device, exc: native.PageError) -> BadPage:
    name = device.name
    if exc.code == native.lib.NM_EMAGIC:
        return BadPage(f"{name}: not an EC2 NVMe device (its 0xD0 page has no Amazon "
                       "statistics magic)")
    message = str(exc).split(" (originated from")[0]
    return BadPage(f"{name}: unreadable statistics page: {message}")


def no_limits(device) -> None:
    return None


def key_of(device) -> tuple[str, str]:
    """What identifies a device across renames: its serial (the volume id for EBS)."""
    return (device.kind, device.serial or device.name)


class DeviceTracker:
    """Baseline, counters of odd events, failure state and episodes of one device."""

    def __init__(self, device, source, *, share: float, episode_gap: int,
                 ongoing_every: float, bounds: tuple[float, float] = DEFAULT_BOUNDS):
        self.device = device
        self.source = source
        self.share = share
        self.baseline: native.Page | None = None
        self.baseline_time = 0.0
        self.up = True
        self.failures = 0
        self.retry_at = 0.0
        self.ended = False  # a recording with no more pages for it
        self.resets = 0
        self.layout_changes = 0
        self.glitches: dict[str, int] = {}
        self.glitching: set[str] = set()  # fields below their committed value
        self.held = 0  # pages held as implausible until the next one decided
        self.holding = False  # the last page is held
        self.held_in_a_row = 0
        # Guard, delta, quantiles and running totals in C: one call per page (observe).
        self.core = devicecore.Device(*bounds, QUANTILES)
        self.version_warned = False
        self.totals_warned = False
        self.episodes = EpisodeTracker(device, episode_gap, ongoing_every)
        self.limits_of = no_limits  # device -> Limits | None, asked for every interval

    @property
    def key(self) -> tuple[str, str]:
        return key_of(self.device)

    @property
    def totals(self) -> devicecore.Totals:
        """The device's running totals (a live view): its first page, from the device's
        own zero, once the next page confirmed it, then every committed delta."""
        return self.core.totals

    def observe(self, raw: bytes, t: float) -> Interval | None:
        """Fold a page in: an Interval of what it committed since the last committed page,
        or None when it commits nothing (the first page, a new layout, or a page held
        because no device could have done what it shows)."""
        prev_t = self.baseline_time
        core = self.core
        try:
            flags = core.step(raw, t)
        except native.LayoutChanged as exc:
            self.layout_changes += 1
            if self.layout_changes == 1:
                log.warning("%s (%s): histogram layout changed; counting from a new "
                            "baseline (one interval lost)", self.device.name, self.device.serial)
            self.baseline, self.baseline_time, self.holding = exc.page, t, False
            return None
        except native.PageError as exc:
            raise bad_page(self.device, exc) from None
        if not self.version_warned and core.version > 1:
            self._warn_version(core.version)
        if flags & _UNUSUAL:
            if self._unusual(flags, t):
                return None
        elif self.glitching or self.held_in_a_row:  # a plain commit ends both
            self.glitching, self.held_in_a_row = set(), 0
        self.holding = False
        if core.totals_error and not self.totals_warned:
            self.totals_warned = True
            log.warning("%s (%s): a delta could not be added to the running totals: %s "
                        "(logged once per device)", self.device.name, self.device.serial,
                        native.strerror(core.totals_error))
        self.baseline_time = t
        # A reading older than the baseline cannot happen on one clock; guard the division.
        seconds = t - prev_t if t > prev_t else 1e-9
        page, summary = core.committed()
        self.baseline = page
        return Interval.from_summary(self.device, prev_t, seconds, summary, page,
                                     self.share, self.limits_of(self.device))

    def _unusual(self, flags: int, t: float) -> bool:
        """A page that was dropped, held, a baseline, a reset or glitched: counts and logs
        it; True when it commits nothing."""
        core = self.core
        summary = core.summary()
        if summary.dropped:
            self._count_glitches(summary.dropped, "grew faster than any device can, then "
                                 "fell back; that page was dropped")
        self.holding = summary.held
        # Held, or a first page replaced, for growth past the bounds: too tight if it lasts.
        self.held_in_a_row = self.held_in_a_row + 1 if summary.past_bounds else 0
        if self.held_in_a_row >= HELD_IN_A_ROW:
            self._widen_bounds()
        if flags & (native.lib.NM_DELTA_HELD | native.lib.NM_DELTA_BASELINE):
            self.baseline = core.page()
            if summary.held:
                self.held += 1
            else:
                self.baseline_time = t
            return True
        if summary.reset:
            self.resets += 1
            log.info("%s (%s): the device restarted its counters; counting from zero",
                     self.device.name, self.device.serial)
        # A field stays below its committed value until it grows past it again: one
        # glitch however many intervals that takes.
        glitches = summary.glitches
        new = [name for name in glitches if name not in self.glitching]
        self.glitching = set(glitches)
        if new:
            self._count_glitches(new, "went down while the device kept counting; no "
                                 "growth counted for it until it is back above its value")
        return False

    def set_bounds(self, bounds: tuple[float, float]) -> None:
        """The most the device can do a second (ec2.device_bounds), once it is known."""
        self.core.bounds = bounds

    def _widen_bounds(self) -> None:
        ops, nbytes = self.core.bounds
        wider = (min(ops * ec2.BOUND_MARGIN, ec2.CEILING_OPS_PER_S),
                 min(nbytes * ec2.BOUND_MARGIN, ec2.CEILING_BYTES_PER_S))
        if wider != (ops, nbytes):
            log.warning("%s (%s): %d pages in a row grew faster than %.0f ops or %.0f bytes a "
                        "second; taking up to %.0f and %.0f as possible for this device",
                        self.device.name, self.device.serial, self.held_in_a_row, ops, nbytes,
                        *wider)
            self.core.bounds = wider
        self.held_in_a_row = 0

    def _warn_version(self, version: int) -> None:
        self.version_warned = True
        log.warning("%s (%s): statistics page version %d is newer than this agent "
                    "knows; decoding the layout it shares with version 1",
                    self.device.name, self.device.serial, version)

    def _count_glitches(self, fields, what: str) -> None:
        first = not self.glitches
        for name in fields:
            self.glitches[name] = self.glitches.get(name, 0) + 1
        if first:
            log.warning("%s (%s): %s %s (logged once per device)", self.device.name,
                        self.device.serial, ", ".join(fields), what)

    def failed(self, exc: BaseException, now: float, interval: float) -> bool:
        """Note a failed read; True when the device was fine until now."""
        first = self.up
        self.up = False
        self.failures += 1
        backoff = min(interval * 2 ** (self.failures - 1), max(MAX_BACKOFF, interval))
        self.retry_at = now + backoff
        return first

    def succeeded(self) -> bool:
        """Note a good read; True when the device is back after failing."""
        recovered = not self.up
        self.up, self.failures, self.retry_at = True, 0, 0.0
        return recovered
