"""One device's state in the C core, kept from poll to poll: the guard's committed baseline,
the running totals, and the one call per poll that folds a page into all of it."""

from __future__ import annotations

from collections.abc import Sequence

from nitrometer.native import (
    DEFAULT_QUANTILES,
    LayoutChanged,
    Page,
    Summary,
    _check,
    _check_qs,
    _new_unzeroed,
    ffi,
    lib,
    strerror,
)


class Guard:
    """One device's committed baseline (native/guard.c): a page whose growth no device
    can do, or on which every traffic counter went back, is held until the next page
    confirms it (committed) or not (dropped), so totals follow the device's true growth."""

    __slots__ = ("_c", "_bounds")

    def __init__(self, ops_per_s: float, bytes_per_s: float):
        self._c = ffi.new("nm_guard *")
        self._bounds = ffi.new("nm_bounds *", {"ops_per_s": ops_per_s,
                                               "bytes_per_s": bytes_per_s})

    @property
    def bounds(self) -> tuple[float, float]:
        """(ops, bytes) a second, per direction, that the device cannot pass."""
        return self._bounds.ops_per_s, self._bounds.bytes_per_s

    @bounds.setter
    def bounds(self, value: tuple[float, float]) -> None:
        self._bounds.ops_per_s, self._bounds.bytes_per_s = value

    def sample(self, buf: bytes, t: float, qs: Sequence[float] = DEFAULT_QUANTILES
               ) -> tuple[Page, Summary]:
        """Decode buf read at t (seconds), step the guard, quantiles of what it committed.
        A page of another layout is the new baseline: LayoutChanged."""
        qs_c = _check_qs(qs)
        page = _new_unzeroed("nm_page *")
        out = _new_unzeroed("nm_summary *")
        rc = lib.nm_guard_sample(self._c, ffi.from_buffer(buf), len(buf), t, self._bounds,
                                 page, qs_c, len(qs), out)
        if rc == lib.NM_ELAYOUT:
            raise LayoutChanged(f"{strerror(rc)} (originated from guard)", rc, Page(page))
        _check(rc, "guard")
        return Page(page), Summary(out, tuple(qs))


class Totals:
    """A device's running totals: deltas added up in C, so they never go down. Its own, or a
    view of those a Device keeps (owner holds that memory)."""

    __slots__ = ("_t", "_owner", "page")

    def __init__(self, cdata=None, owner=None):
        self._t = ffi.new("nm_totals *") if cdata is None else cdata
        self._owner = owner
        self.page = Page(ffi.addressof(self._t, "page"), owner=self._t)  # counters, bins, bands

    def add(self, delta: Page) -> None:
        """Adds a delta; one with other bins or bands is merged onto the totals' own.
        Raises PageError (NM_ELAYOUT) only for a delta of another kind of device."""
        t = self._t
        _check(lib.nm_accumulate(self.page._c, t.band_sum_us, t.band_ios_moved, delta._c),
               "accumulate")

    def copy_from(self, other: Totals) -> None:
        """Becomes a copy of other (one memory copy): totals published under a lock."""
        ffi.memmove(self._t, other._t, _TOTALS_SIZE)

    @property
    def band_ios_unplaced(self) -> int:
        """IO-size band IOs left out: these totals were started from a page without bands."""
        return self._t.band_ios_moved[0]

    @property
    def band_ios_widened(self) -> int:
        """Band IOs added to the widest totals band: their own band was wider than any."""
        return self._t.band_ios_moved[1]

    @property
    def empty(self) -> bool:
        return self._t.page.kind == 0

    def band_sums_us(self) -> list[tuple[float, float]]:
        """Estimated read and write time per band (bin midpoints), microseconds."""
        sums = ffi.unpack(self._t.band_sum_us, 2 * self._t.page.num_bands)
        return list(zip(sums[0::2], sums[1::2]))


_TOTALS_SIZE = ffi.sizeof("nm_totals")
_device_step = lib.nm_device_step
_HELD_OR_BASELINE = lib.NM_DELTA_HELD | lib.NM_DELTA_BASELINE


class Device:
    """One device's whole state in C (native/device.c), allocated once when it is first
    seen: each page is folded in by one call, step(), into the same buffers (decode, the
    guard's rules, delta, quantiles, IOs per band, running totals). What the last step
    committed is read through summary() until the next step; totals is a live view."""

    __slots__ = ("_c", "qs", "totals")

    def __init__(self, ops_per_s: float, bytes_per_s: float,
                 qs: Sequence[float] = DEFAULT_QUANTILES):
        qs_c = _check_qs(qs)
        self._c = ffi.new("nm_device *")
        bounds = ffi.new("nm_bounds *", {"ops_per_s": ops_per_s, "bytes_per_s": bytes_per_s})
        _check(lib.nm_device_init(self._c, bounds, qs_c, len(qs)), "device")
        self.qs = tuple(qs)
        self.totals = Totals(ffi.addressof(self._c, "totals"), owner=self._c)

    def step(self, raw: bytes, t: float) -> int:
        """Fold in a page read at t (seconds): its NM_DELTA_* flags (HELD or BASELINE:
        nothing committed). A page of another layout is the new baseline: LayoutChanged."""
        try:
            rc = _device_step(self._c, raw, len(raw), t)  # bytes go in without a copy
        except TypeError:  # a bytearray or memoryview
            rc = _device_step(self._c, ffi.from_buffer(raw), len(raw), t)
        if rc < 0:
            self._fail(rc)
        return rc

    def _fail(self, rc: int) -> None:
        if rc == lib.NM_ELAYOUT:
            raise LayoutChanged(f"{strerror(rc)} (originated from device step)", rc,
                                self.page())
        _check(rc, "device step")

    @property
    def bounds(self) -> tuple[float, float]:
        """(ops, bytes) a second, per direction, that the device cannot pass."""
        b = self._c.bounds
        return b.ops_per_s, b.bytes_per_s

    @bounds.setter
    def bounds(self, value: tuple[float, float]) -> None:
        b = self._c.bounds
        b.ops_per_s, b.bytes_per_s = value

    @property
    def version(self) -> int:
        """Of the page the last step decoded."""
        return self._c.cur.version

    def page(self) -> Page:
        """A copy of the page the last step decoded."""
        return Page(ffi.addressof(self._c, "cur")).copy()

    def summary(self) -> Summary:
        """What the last step committed; a view, valid until the next step."""
        return Summary(ffi.addressof(self._c, "out"), self.qs)

    def committed(self) -> tuple[Page, Summary]:
        """Copies of the page the last step decoded and of what it committed, of their
        own: they stay as they are through later steps (two struct copies)."""
        c = self._c
        return (Page(_new_unzeroed("nm_page *", c.cur)),
                Summary(_new_unzeroed("nm_summary *", c.out), self.qs))

    @property
    def totals_error(self) -> int:
        """0, or the error code of the last delta the totals could not take."""
        return self._c.totals_rc
