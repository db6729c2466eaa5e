"""A device's lines of /metrics written by the C core (native/render.c) in one call, from
the device's totals, a few values kept in Python, and a plan of the lines' prefixes built
once per device layout."""

from __future__ import annotations

from collections.abc import Sequence

from nitrometer.devicecore import Totals
from nitrometer.native import ffi, lib

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


class Line:
    """One sample line: its prefix (name, labels, a space), then op's value: counter `arg`
    as a count (COUNT) or times the plan's scale (SCALED), or the call's value `arg`
    (VALUE)."""

    __slots__ = ("op", "arg", "prefix")

    def __init__(self, op: int, arg: int, prefix: str):
        self.op, self.arg, self.prefix = op, arg, prefix


COUNT, SCALED, VALUE = lib.NM_RENDER_COUNT, lib.NM_RENDER_SCALED, lib.NM_RENDER_VALUE
END = None  # in a plan's items: the end of a part (a family's chunk)


class DevicePlan:
    """The plan of a device's lines: one blob of the texts (each once) and one array of
    uint32s, from items (Line, HistogramSpec, END) in the order they are written; the
    output is split after each END."""

    __slots__ = ("_text", "_plan", "num_hists", "num_parts", "scale")

    def __init__(self, items: Sequence, scale: float):
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
        self.num_hists = self.num_parts = 0
        for item in items:
            if item is END:
                plan.append(lib.NM_RENDER_END)
                self.num_parts += 1
            elif isinstance(item, Line):
                plan += (item.op, item.arg, *ref(item.prefix))
            else:
                if not item.buckets:
                    raise ValueError("a histogram has at least its +Inf bucket")
                plan += (lib.NM_RENDER_HISTOGRAM, item.source, len(item.buckets),
                         *ref(item.before), *ref(item.after), *ref(item.count),
                         *ref(item.sum))
                for bins, le in item.buckets:
                    plan += (bins, *ref(le))
                self.num_hists += 1
        self._text = bytes(blob)
        self._plan = ffi.new("uint32_t[]", plan)
        self.scale = scale

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
        self._ends = ffi.new("uint64_t[]", 32)
        self._values = ffi.new("double[]", 32)

    @property
    def c_bytes(self) -> int:
        return ffi.sizeof(self._out) + ffi.sizeof(self._ends) + ffi.sizeof(self._values)

    def render(self, plan: DevicePlan, totals: Totals, values: Sequence[float] = ()
               ) -> list[bytes] | None:
        """The plan's lines from these totals and values, one bytes per part; None when the
        totals cannot be written by it (a band it does not have, a count past 64 bits)."""
        if plan.num_parts > len(self._ends):
            self._ends = ffi.new("uint64_t[]", plan.num_parts)
        if len(values) > len(self._values):
            self._values = ffi.new("double[]", len(values))
        self._values[0:len(values)] = values
        args = (totals._t, plan._text, len(plan._text), plan._plan, len(plan._plan),
                self._values, len(values), plan.scale)
        n = lib.nm_render_device(*args, self._out, len(self._out), self._ends,
                                 len(self._ends))
        if n > len(self._out):
            self._out = ffi.new("char[]", n + n // 4)
            n = lib.nm_render_device(*args, self._out, len(self._out), self._ends,
                                     len(self._ends))
        if n < 0:
            return None
        text = ffi.unpack(self._out, n)
        out, start = [], 0
        for end in ffi.unpack(self._ends, plan.num_parts):
            out.append(text[start:end])
            start = end
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
