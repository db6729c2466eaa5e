"""The Prometheus text format, written by hand: sample values, label sets, histogram buckets
and one metric family's lines, as the Prometheus client libraries write them."""

from __future__ import annotations

import functools
from bisect import bisect_left

from nitrometer import metrics as m
from nitrometer.agent.state import US

EXPONENT_FROM = 1_000_000  # Go writes a float with 7 or more integer digits as d.ddde+XX
EXACT_INTS = 1 << 53  # every int below converts to float exactly
INF = float("inf")


def gofloat(value: float) -> str:
    """A float as the Python client writes sample values: Python's shortest repr, except that
    a positive value of 7 or more integer digits takes Go's exponent form (1.2345e+07)."""
    if value != value:
        return "NaN"
    if value in (INF, -INF):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    whole, dot, fraction = text.partition(".")
    if value <= 0 or not dot or len(whole) < 7:  # not dot: repr chose an exponent itself
        return text
    return _exponent_form(whole, fraction)


def _exponent_form(whole: str, fraction: str) -> str:
    digits = (whole + fraction).rstrip("0")
    mantissa = digits[0] + "." + digits[1:] if len(digits) > 1 else digits
    return f"{mantissa}e+{len(whole) - 1:02d}"


def fmt(value) -> str:
    """A sample value (int or float) as text."""
    if type(value) is int and 0 <= value < EXACT_INTS:
        if value < EXPONENT_FROM:
            return f"{value}.0"
        return _exponent_form(str(value), "")  # what the float would give, without it
    return gofloat(float(value))


def counts_text(values: list[int]) -> list[str]:
    """fmt of each of a histogram's cumulative counts (ascending ints >= 0), each with its
    newline: the small ones, all first, without a call each."""
    small = bisect_left(values, EXPONENT_FROM)
    out = [f"{v}.0\n" for v in values[:small]]
    if small < len(values):
        out += [fmt(v) + "\n" for v in values[small:]]
    return out


def escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@functools.lru_cache(maxsize=8192)  # the same few label sets every scrape
def labelstr(names: tuple, values: tuple) -> str:
    """{a="x",b="y"} with names sorted, as prometheus_client writes them; '' for none."""
    if not names:
        return ""
    pairs = sorted(zip(names, values))
    return "{" + ",".join(f'{k}="{escape(str(v))}"' for k, v in pairs) + "}"


@functools.lru_cache(maxsize=8192)
def bucket_affixes(name: str, names: tuple, values: tuple) -> tuple[str, str]:
    """The text before and after the le value of a _bucket sample, le sorted in place."""
    text = labelstr(tuple(names) + ("le",), tuple(values) + ("\0",))
    before, after = text.split("\0")
    return f"{name}_bucket{before}", f"{after} "


_LE_CACHE: dict[tuple[int, ...], tuple[str, ...]] = {}  # bin layouts seen: a handful
# --histogram.buckets=coarse (the default): the device's power-of-two bins merged (in C) onto
# fewer edges, so an instance-store device stays under 120 series. Powers of two, so each
# device bin falls wholly inside one bucket and the counts stay exact.
COARSE_LATENCY_EDGES_US = tuple(4 ** i for i in range(1, 11))  # 4 us .. 1.05 s, x4
COARSE_BAND_EDGES_US = (128, 1024, 8192)  # per IO-size band: fast, ~1 ms, ~8 ms, slower


def le_strings(uppers: list[int]) -> tuple[str, ...]:
    """le of each bin (upper bound in seconds); the last bin is open ended: +Inf."""
    key = tuple(uppers)
    les = _LE_CACHE.get(key)
    if les is None:
        les = tuple(repr(float(u * US)) for u in key[:-1]) + ("+Inf",)
        if len(_LE_CACHE) < 64:
            _LE_CACHE[key] = les
    return les


class Family:
    """One metric family's lines: the HELP and TYPE header, then its samples; binary, its
    lines are UTF-8 bytes (written by the C core), else text."""

    __slots__ = ("name", "kind", "doc", "lines", "binary")

    def __init__(self, name: str, kind: str, doc: str, binary: bool = False):
        self.name, self.kind, self.doc = name, kind, doc
        self.binary = binary
        self.lines: list = []

    def add(self, labels: str, value) -> None:
        self.lines.append(f"{self.name}{labels} {fmt(value)}\n")

    def histogram(self, names, values, les, counts, sum_value) -> None:
        before, after = bucket_affixes(self.name, names, values)
        if not les:  # a histogram with no bins still has its +Inf bucket
            les, counts = ("+Inf",), (0,)
        lines, running, value = self.lines, 0, "0.0"
        for le, count in zip(les, counts):
            if count:  # most bins are empty: the running total's text is reused
                running += count
                value = fmt(running)
            lines.append(f"{before}{le}{after}{value}\n")
        labels = labelstr(names, values)
        lines.append(f"{self.name}_count{labels} {fmt(running)}\n")
        lines.append(f"{self.name}_sum{labels} {fmt(sum_value)}\n")

    def header(self, openmetrics: bool) -> str:
        if openmetrics:
            name = m.family(self.name) if self.kind == "counter" else self.name
            return f"# HELP {name} {escape(self.doc)}\n# TYPE {name} {self.kind}\n"
        doc = self.doc.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.name} {doc}\n# TYPE {self.name} {self.kind}\n"
