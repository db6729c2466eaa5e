"""The only importer of the compiled core: checks inputs, calls C, raises on errors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from nitrometer.errors import NitrometerError
from nitrometer.logpage import COUNTERS, NO_SIZE_BOUND

BINDING_ENV = "NITROMETER_NATIVE"  # "abi": the library even where the extension imports


def _load() -> tuple:
    """The core as native/build.py built it: the cffi API-mode extension (nitrometer._nmcore,
    each call bound by the compiler) when it imports, else the plain library through cffi's
    ABI mode (nitrometer._ffi + libnmcore.so). Both have the same ffi and lib."""
    wanted = os.environ.get(BINDING_ENV, "")
    if wanted not in ("", "api", "abi"):
        raise NitrometerError(f"{BINDING_ENV}={wanted!r}: expected 'api' or 'abi' (or unset)")
    failures = []
    if wanted != "abi":
        try:
            from nitrometer._nmcore import ffi, lib
            return ffi, lib, "api"
        except ImportError as exc:
            failures.append(f"extension: {exc}")
    if wanted != "api":
        try:
            from nitrometer._ffi import ffi
            return ffi, ffi.dlopen(os.path.join(os.path.dirname(__file__), "libnmcore.so")), "abi"
        except (ImportError, OSError) as exc:
            failures.append(f"library: {exc}")
    raise NitrometerError(f"the C core of nitrometer is missing ({'; '.join(failures)}); "
                          "build it with `make venv` or install a wheel")


ffi, lib, BINDING = _load()  # BINDING: "api" (the extension) or "abi" (the library)

DEFAULT_QUANTILES = (0.5, 0.9, 0.99, 0.999)
_COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}
KIND_NAMES = {lib.NM_KIND_EBS: "ebs", lib.NM_KIND_INSTANCE_STORE: "instance_store"}


class PageError(NitrometerError):
    """A page the decoder refused, with the C error code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class NvmeStatusError(NitrometerError):
    """The controller completed the admin command with a non-zero NVMe status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def strerror(code: int) -> str:
    return ffi.string(lib.nm_strerror(code)).decode()


def _check(rc: int, call: str) -> None:
    if rc < 0:
        raise PageError(f"{strerror(rc)} (originated from {call})", rc)


class Histogram:
    """A view of one histogram inside a decoded page; counts may be a band's."""

    __slots__ = ("_owner", "_bounds", "_count", "num_bins")

    def __init__(self, owner, bounds, count, num_bins: int):
        self._owner = owner  # keeps the C memory alive
        self._bounds = bounds
        self._count = count
        self.num_bins = num_bins

    @property
    def lower(self) -> list[int]:
        return ffi.unpack(self._bounds.lower, self.num_bins)

    @property
    def upper(self) -> list[int]:
        return ffi.unpack(self._bounds.upper, self.num_bins)

    @property
    def counts(self) -> list[int]:
        return ffi.unpack(self._count, self.num_bins)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def bins(self) -> list[tuple[int, int, int]]:
        return list(zip(self.lower, self.upper, self.counts))

    def quantiles(self, qs: Sequence[float] = DEFAULT_QUANTILES) -> list[float]:
        """Quantiles in microseconds; NaN when the histogram is empty."""
        return quantiles(self, qs)

    def to_dict(self) -> dict:
        return {
            "num_bins": self.num_bins,
            "bins": [{"lower": lo, "upper": up, "count": c} for lo, up, c in self.bins()],
        }


@dataclass(frozen=True)
class Band:
    low: int  # bytes, exclusive
    high: int | None  # bytes, inclusive; None = no bound
    read: Histogram
    write: Histogram

    @property
    def label(self) -> str:
        """A short label for the band's upper bound: 512, 4K, 1M, max."""
        return format_size(self.high)


def format_size(size: int | None) -> str:
    if size is None:
        return "max"
    if size and size % (1 << 20) == 0:
        return f"{size >> 20}M"
    if size and size % 1024 == 0:
        return f"{size >> 10}K"
    return str(size)


class Page:
    """A decoded page (or the delta of two). Counter values are raw device units."""

    __slots__ = ("_c", "_owner")

    def __init__(self, cdata, owner=None):
        self._c = cdata
        self._owner = owner  # set when cdata points into another C object

    @property
    def kind(self) -> str:
        return KIND_NAMES[self._c.kind]

    @property
    def magic(self) -> int:
        return self._c.magic

    @property
    def version(self) -> int:
        return self._c.version

    @property
    def counters(self) -> dict[str, int]:
        return dict(zip(COUNTERS, ffi.unpack(self._c.counters, len(COUNTERS))))

    def copy(self) -> Page:
        """A page of its own: one struct copy, for a view into memory that is reused."""
        return Page(ffi.new("nm_page *", self._c[0]))

    def band_bounds(self) -> list[tuple[int, int | None]]:
        """Each band's (low, high) bytes, high None for no bound; two reads from C."""
        n = self._c.num_bands
        return [(low, None if high > NO_SIZE_BOUND else high) for low, high in
                zip(ffi.unpack(self._c.band_low, n), ffi.unpack(self._c.band_high, n))]

    def __getitem__(self, counter: str) -> int:
        return self._c.counters[_COUNTER_INDEX[counter]]

    @property
    def read(self) -> Histogram:
        return Histogram(self, self._c.read, self._c.read.count, self._c.read.num_bins)

    @property
    def write(self) -> Histogram:
        return Histogram(self, self._c.write, self._c.write.count, self._c.write.num_bins)

    @property
    def bands(self) -> list[Band]:
        c = self._c
        return [
            Band(
                low=c.band_low[i],
                high=None if c.band_high[i] > NO_SIZE_BOUND else c.band_high[i],
                read=Histogram(self, c.write, c.band_read[i], c.band_bins),
                write=Histogram(self, c.write, c.band_write[i], c.band_bins),
            )
            for i in range(c.num_bands)
        ]

    def to_dict(self) -> dict:
        """nvme-cli's JSON keys, plus kind, version and the IO-size bands."""
        out: dict = {"kind": self.kind, "version": self.version}
        out.update(self.counters)
        out["read_io_latency_histogram"] = self.read.to_dict()
        out["write_io_latency_histogram"] = self.write.to_dict()
        if self.version >= 1:  # newer versions keep version 1's detail, when it is valid
            out["io_size_histograms"] = [
                {
                    "io_size_low": band.low,
                    "io_size_high": band.high,
                    "read_io_latency_histogram": band.read.to_dict(),
                    "write_io_latency_histogram": band.write.to_dict(),
                }
                for band in self.bands
            ]
        return out


def decode(buf: bytes) -> Page:
    page = ffi.new("nm_page *")
    _check(lib.nm_decode(ffi.from_buffer(buf), len(buf), page), "decode")
    return Page(page)


_QS_ARRAYS: dict[tuple[float, ...], object] = {}  # the few quantile sets in use, built once


def _qs_array(qs: Sequence[float]):
    key = tuple(qs)
    array = _QS_ARRAYS.get(key)
    if array is None:
        for q in key:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile {q} is outside [0, 1]")
        array = ffi.new("double[]", list(key) or [0.0])
        if len(_QS_ARRAYS) < 64:
            _QS_ARRAYS[key] = array
    return array


def quantiles(hist: Histogram, qs: Sequence[float] = DEFAULT_QUANTILES) -> list[float]:
    out = ffi.new("double[]", max(len(qs), 1))
    b = hist._bounds
    _check(lib.nm_quantiles(b.lower, b.upper, hist._count, hist.num_bins, _qs_array(qs),
                            len(qs), out), "quantiles")
    return ffi.unpack(out, len(qs))


def merge_bins(hist: Histogram, edges: Sequence[int]) -> list[int]:
    """Counts in coarser buckets ending at edges (us), plus one bucket past the last."""
    out = ffi.new("uint64_t[]", len(edges) + 1)
    _check(lib.nm_merge_bins(hist._bounds.upper, hist._count, hist.num_bins,
                             ffi.new("uint64_t[]", list(edges)), len(edges), out), "merge_bins")
    return ffi.unpack(out, len(edges) + 1)


# Names of the bin groups a glitch can hit, beside the counter names.
GLITCH_BINS = ("read_bins", "write_bins", "band_bins")


class Summary:
    """One poll's worth: the delta page, whether the device reset, which fields went down
    alone (glitches: they grew by 0), latency quantiles (us) per op and per IO-size band,
    and IOs per band. Values are read from C memory when first asked for."""

    __slots__ = ("_c", "_q", "_delta", "reset", "qs")

    def __init__(self, cdata, qs: tuple[float, ...]):
        self._c = cdata
        self._q: list[list[float]] | None = None
        self._delta: Page | None = None
        self.reset = bool(cdata.info.flags & lib.NM_DELTA_RESET)
        self.qs = qs

    @property
    def glitches(self) -> tuple[str, ...]:
        """Counters (logpage.COUNTERS names) and bin groups that went down, in page order."""
        info = self._c.info
        if not info.flags & lib.NM_DELTA_GLITCH:
            return ()
        names = [name for i, name in enumerate(COUNTERS) if info.counters >> i & 1]
        return tuple(names) + tuple(g for g in GLITCH_BINS if getattr(info, g))

    @property
    def flags(self) -> int:
        return self._c.info.flags

    @property
    def held(self) -> bool:
        """The page was implausible: nothing committed, it waits for the next page."""
        return bool(self._c.info.flags & lib.NM_DELTA_HELD)

    @property
    def baseline(self) -> bool:
        """The first page, or one of a new layout: nothing to commit."""
        return bool(self._c.info.flags & lib.NM_DELTA_BASELINE)

    @property
    def past_bounds(self) -> bool:
        """Held, or taken as a new baseline, because it grew faster than the bounds."""
        return bool(self._c.info.implausible) and bool(
            self._c.info.flags & (lib.NM_DELTA_HELD | lib.NM_DELTA_BASELINE))

    @property
    def dropped(self) -> tuple[str, ...]:
        """A held page the next did not confirm: the fields that grew past the bounds."""
        info = self._c.info
        if not info.flags & lib.NM_DELTA_DROPPED:
            return ()
        names = [name for i, name in enumerate(COUNTERS) if info.implausible >> i & 1]
        return tuple(names) + (("bins",) if info.implausible & IMPLAUSIBLE_BINS else ())

    @property
    def glitch_count(self) -> int:
        """How many fields went down alone: counters plus bins."""
        info = self._c.info
        return (bin(info.counters).count("1") + info.read_bins + info.write_bins
                + info.band_bins)

    @property
    def delta(self) -> Page:
        if self._delta is None:
            self._delta = Page(ffi.addressof(self._c, "delta"), owner=self._c)
        return self._delta

    def counter_values(self) -> list[int]:
        """The delta's counters in logpage.COUNTERS order, in one read."""
        return ffi.unpack(self._c.delta.counters, len(COUNTERS))

    def op_quantiles(self) -> tuple[list[float], list[float]]:
        """Read and write quantiles only, in one read (the bands' are not touched)."""
        n = len(self.qs)
        flat = ffi.unpack(self._c.q, 2 * n)
        return flat[:n], flat[n:]

    def _quantiles(self) -> list[list[float]]:
        """All quantiles in one read: reads, writes, then each band's reads and writes."""
        if self._q is None:
            n = len(self.qs)
            flat = ffi.unpack(self._c.q, (2 + 2 * self._c.delta.num_bands) * n)
            self._q = [flat[i:i + n] for i in range(0, len(flat), n)] if n else [[], []]
        return self._q

    @property
    def read_q(self) -> list[float]:
        return self._quantiles()[0]

    @property
    def write_q(self) -> list[float]:
        return self._quantiles()[1]

    @property
    def band_read_q(self) -> list[list[float]]:
        return self._quantiles()[2::2]

    @property
    def band_write_q(self) -> list[list[float]]:
        return self._quantiles()[3::2]

    @property
    def band_read_ops(self) -> list[int]:
        return ffi.unpack(self._c.band_read_ops, self._c.delta.num_bands)

    @property
    def band_write_ops(self) -> list[int]:
        return ffi.unpack(self._c.band_write_ops, self._c.delta.num_bands)


# The C calls fill (or zero) what they hand back, so skip cffi's clearing of 7-10 KiB.
_new_unzeroed = ffi.new_allocator(should_clear_after_alloc=False)


def _check_qs(qs: Sequence[float]):
    if len(qs) > lib.NM_MAX_QUANTILES:
        raise ValueError(f"at most {lib.NM_MAX_QUANTILES} quantiles at once")
    return _qs_array(qs)


def summarize(prev: Page, cur: Page, qs: Sequence[float] = DEFAULT_QUANTILES) -> Summary:
    """Delta and quantiles of both ops and every band, in one C call."""
    qs_c = _check_qs(qs)
    out = _new_unzeroed("nm_summary *")
    _check(lib.nm_summarize(prev._c, cur._c, qs_c, len(qs), out), "summarize")
    return Summary(out, tuple(qs))


def delta(prev: Page, cur: Page) -> Summary:
    """The change from prev to cur (.delta) with .reset and .glitches; no quantiles."""
    return summarize(prev, cur, ())


class LayoutChanged(PageError):
    """The new page decoded, but its bins differ from the previous page's: no delta."""

    def __init__(self, message: str, code: int, page: Page):
        super().__init__(message, code)
        self.page = page


def sample(prev: Page, buf: bytes, qs: Sequence[float] = DEFAULT_QUANTILES
           ) -> tuple[Page, Summary]:
    """One poll in one C call: decode buf, then its delta from prev and the quantiles."""
    qs_c = _check_qs(qs)
    page = _new_unzeroed("nm_page *")
    out = _new_unzeroed("nm_summary *")
    rc = lib.nm_sample(prev._c, ffi.from_buffer(buf), len(buf), page, qs_c, len(qs), out)
    if rc == lib.NM_ELAYOUT:
        raise LayoutChanged(f"{strerror(rc)} (originated from sample)", rc, Page(page))
    _check(rc, "sample")
    return Page(page), Summary(out, tuple(qs))


IMPLAUSIBLE_BINS = 0x80000000


def _ioctl_error(rc: int, what: str) -> Exception:
    if rc < 0:
        return OSError(-rc, f"{what}: {os.strerror(-rc)} "
                            "(originated from ioctl NVME_IOCTL_ADMIN_CMD)")
    return NvmeStatusError(f"{what}: the controller answered NVMe status {rc:#x}", rc)


def get_log_page(fd: int, length: int, *, nsid: int = 1, log_id: int = 0xD0) -> bytes:
    """Get Log Page through the admin passthrough; OSError carries the errno."""
    buf = ffi.new("uint8_t[]", length)
    rc = lib.nm_get_log_page(fd, nsid, log_id, buf, length)
    if rc != 0:
        raise _ioctl_error(rc, f"Get Log Page {log_id:#04x}")
    return ffi.buffer(buf, length)[:]


def identify_controller(fd: int) -> bytes:
    buf = ffi.new("uint8_t[]", lib.NM_IDENTIFY_LEN)
    rc = lib.nm_identify_controller(fd, buf)
    if rc != 0:
        raise _ioctl_error(rc, "Identify Controller")
    return ffi.buffer(buf, lib.NM_IDENTIFY_LEN)[:]


