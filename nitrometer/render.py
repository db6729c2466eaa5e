"""A device's histogram lines of /metrics written by the C core (native/render.c) in one
call, from the device's totals and a plan of the lines' prefixes built once per layout."""

from __future__ import annotations

from collections.abc import Sequence

from nitrometer.native import Totals, ffi, lib

READS, WRITES = 0, 1
ALL_BINS = lib.NM_RENDER_ALL_BINS


def band_source(band: int, op: int) -> int:
    """The plan's source of band `band`'s reads (op 0) or writes (op 1)."""
    return 2 + 2 * band + op


class HistogramSpec:
    """One histogram's lines: where its bins and sum come from, and its text around the
    values. buckets: (bins counted, le text) of each _bucket line, +Inf last (ALL_BINS)."""

    __slots__ = ("source", "before", "after", "count", "sum", "buckets")

    def __init__(self, source: int, before: str, after: str, count: str, sum_prefix: str,
                 buckets: Sequence[tuple[int, str]]):
        self.source, self.before, self.after = source, before, after
        self.count, self.sum, self.buckets = count, sum_prefix, tuple(buckets)


class HistogramPlan:
    """The plan of a device's histograms: one blob of the texts (each once) and one array of
    uint32s; `parts` splits the output after those histograms (a family's end)."""

    __slots__ = ("_text", "_plan", "num_hists", "scale", "parts")

    def __init__(self, specs: Sequence[HistogramSpec], scale: float,
                 parts: Sequence[int] = ()):
        texts: dict[str, tuple[int, int]] = {}
        blob = bytearray()

        def ref(text: str) -> tuple[int, int]:
            found = texts.get(text)
            if found is None:
                data = text.encode()
                found = texts[text] = (len(blob), len(data))
                blob.extend(data)
            return found

        plan: list[int] = []
        for spec in specs:
            if not spec.buckets:
                raise ValueError("a histogram has at least its +Inf bucket")
            plan += (spec.source, len(spec.buckets), *ref(spec.before), *ref(spec.after),
                     *ref(spec.count), *ref(spec.sum))
            for bins, le in spec.buckets:
                plan += (bins, *ref(le))
        self._text = bytes(blob)
        self._plan = ffi.new("uint32_t[]", plan)
        self.num_hists = len(specs)
        self.scale = scale
        self.parts = tuple(parts)

    @property
    def size(self) -> int:
        """Bytes the plan holds (its text and its array)."""
        return len(self._text) + ffi.sizeof(self._plan)

    @property
    def c_bytes(self) -> int:
        """Of those, the bytes C holds (its array), which tracemalloc does not see."""
        return ffi.sizeof(self._plan)


class LineBuffer:
    """Room for the lines of one device at a time, grown when a device needs more; one per
    renderer (renders of one renderer never overlap)."""

    def __init__(self, size: int = 1 << 15):
        self._out = ffi.new("char[]", size)
        self._ends = ffi.new("uint64_t[]", 64)

    @property
    def c_bytes(self) -> int:
        return ffi.sizeof(self._out) + ffi.sizeof(self._ends)

    def render(self, plan: HistogramPlan, totals: Totals) -> list[bytes] | None:
        """The plan's lines from these totals, split at plan.parts; None when the totals
        cannot be written by it (a band it does not have, a count past 64 bits)."""
        if plan.num_hists > len(self._ends):
            self._ends = ffi.new("uint64_t[]", plan.num_hists)
        args = (totals._t, plan._text, len(plan._text), plan._plan, plan.num_hists,
                plan.scale)
        n = lib.nm_render_histograms(*args, self._out, len(self._out), self._ends)
        if n > len(self._out):
            self._out = ffi.new("char[]", n + n // 4)
            n = lib.nm_render_histograms(*args, self._out, len(self._out), self._ends)
        if n < 0:
            return None
        out, start = [], 0
        for part in plan.parts:
            end = self._ends[part - 1] if part else 0
            out.append(ffi.unpack(self._out + start, end - start))
            start = end
        out.append(ffi.unpack(self._out + start, n - start))
        return out


def layout_of(totals: Totals) -> tuple[tuple, tuple, int, tuple]:
    """The bin upper bounds of reads and writes, the number of bands, and the bands' bin
    upper bounds (the first band_bins of the writes'): read straight from the totals."""
    p = totals._t.page
    return (tuple(ffi.unpack(p.read.upper, p.read.num_bins)),
            tuple(ffi.unpack(p.write.upper, p.write.num_bins)), p.num_bands,
            tuple(ffi.unpack(p.write.upper, p.band_bins)) if p.num_bands else ())


def layout_signature(totals: Totals) -> bytes:
    """What layout_of reads, as raw bytes: a cheap key to find a layout seen before."""
    p = totals._t.page
    return b"".join((ffi.buffer(p.read.upper)[:8 * p.read.num_bins],
                     ffi.buffer(p.write.upper)[:8 * p.write.num_bins],
                     p.num_bands.to_bytes(4, "little"), p.band_bins.to_bytes(4, "little")))


def format_value(value: float) -> str:
    """A float as the C core writes a sample value."""
    out = ffi.new("char[32]")
    return ffi.unpack(out, lib.nm_format_value(value, out)).decode()


def format_count(value: int) -> str:
    """A count (0 <= value < 2^64) as the C core writes it."""
    out = ffi.new("char[32]")
    return ffi.unpack(out, lib.nm_format_count(value, out)).decode()
