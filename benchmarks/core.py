"""1. One device sample: the C core against the pure-Python reference and the nvme-cli way.

A sample is what one poll costs per device: the new page decoded, its delta from the
previous page (decoded at the previous poll, as the agent keeps it), and the p50/p90/p99/
p99.9 of reads and writes, overall and in every IO-size band. Every path must give the
same numbers, checked before anything is timed.
"""

from __future__ import annotations

import json
import math

from benchmarks.common import ROOT, Context, Section, fmt_ns, interleaved, median
from devkit import reference as ref
from devkit.pages import device as fake_device
from nitrometer import devicecore, native
from nitrometer.collectors.nvme_cli_format import parse_stats
from nitrometer.logpage import COUNTERS
from nitrometer.native import ffi, lib
from nitrometer.sampling import QUANTILES
from nitrometer.sampling.device import DeviceTracker

NAME = "core"
TITLE = "1. One device sample: C core, pure Python, nvme-cli JSON"
CAPTURES = ROOT / "tests" / "fixtures" / "nvme-cli-captures"
# What real nvme-cli 3.0 printed with -d -o json: instance storage with 5 bands, EBS.
JSON_CAPTURES = {"instance_store": CAPTURES / "case1-local-v1" / "nvme-3.0rc1-json-details.out",
                 "ebs": CAPTURES / "case3-ebs-v0" / "nvme-3.0rc1-json-details.out"}
QUEUE = "volume_queue_length"
U32 = 2**32
WRAPPER_LOOPS = 2000  # calls per round when timing each wrapper against its bare call
# Successive pages one device state folds in before it starts over (its first is a baseline).
STEPS = 64
ONE_CALL = "C core, one call per device (as the agent calls it)"
ONE_CALL_BARE = "C core, one call per device, bare"
OBSERVE = "engine: DeviceTracker.observe (the one call + the Interval record)"


def _earlier(obj):
    """The same page some seconds before: every count and counter a little lower."""
    if isinstance(obj, dict):
        return {k: (v if k in ("lower", "upper", "num_bins", "num_of_hists", QUEUE)
                    or not isinstance(v, int) else v - v // 997)
                if not isinstance(v, (dict, list)) else _earlier(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_earlier(v) for v in obj]
    return obj


def _later(obj, k: int):
    """The same page k polls later, each poll adding what _earlier took away: so every
    poll's delta is the very delta from the previous page to the current one."""
    if isinstance(obj, dict):
        return {key: (v if key in ("lower", "upper", "num_bins", "num_of_hists", QUEUE)
                      or not isinstance(v, int) else v + k * (v // 997))
                if not isinstance(v, (dict, list)) else _later(v, k) for key, v in obj.items()}
    if isinstance(obj, list):
        return [_later(v, k) for v in obj]
    return obj


class DeviceSteps:
    """One device's successive pages, a second apart, folded in by nm_device_step as the
    agent does it: decode, guard, delta, quantiles, band IOs and running totals in one call
    into buffers allocated once. Every STEPS pages the state starts over (one baseline
    page in STEPS, timed too)."""

    def __init__(self, kind: str):
        self.kind = kind
        cur = json.loads(JSON_CAPTURES[kind].read_text())
        self.polls = [(parse_stats(json.dumps(_later(cur, k))).page(kind), float(k))
                      for k in range(STEPS)]
        self.bounds = ffi.new("nm_bounds *", {"ops_per_s": 1e9, "bytes_per_s": 1e15})
        self.qs = ffi.new("double[]", list(QUANTILES))
        self.device = devicecore.Device(1e9, 1e15, QUANTILES)

    def _restart(self) -> None:
        lib.nm_device_init(self.device._c, self.bounds, self.qs, len(QUANTILES))

    def wrapped(self, n: int) -> None:
        """devicecore.Device.step, called as the device tracker calls it."""
        device, polls, done = self.device, self.polls, 0
        while done < n:
            self._restart()
            for raw, t in polls[:n - done]:
                device.step(raw, t)
            done += STEPS

    def bare(self, n: int) -> None:
        """The bare cffi call of nm_device_step: the floor of any wrapper."""
        step, c, polls, done = lib.nm_device_step, self.device._c, self.polls, 0
        while done < n:
            self._restart()
            for raw, t in polls[:n - done]:
                step(c, raw, len(raw), t)
            done += STEPS

    def observed(self, n: int) -> None:
        """What the engine does per device per poll: the one call, then the immutable
        Interval record every view renders (a new device every STEPS pages)."""
        polls, done = self.polls, 0
        while done < n:
            tracker = DeviceTracker(fake_device(kind=self.kind), None, share=0.01,
                                    episode_gap=3, ongoing_every=60.0, bounds=(1e9, 1e15))
            for raw, t in polls[:n - done]:
                tracker.observe(raw, t)
            done += STEPS

    def quantiles(self):
        """Quantiles of the second poll, whose delta is inputs()'s previous to current."""
        self._restart()
        for raw, t in self.polls[:2]:
            self.device.step(raw, t)
        s = self.device.summary()
        return [s.read_q, s.write_q, *[q for pair in zip(s.band_read_q, s.band_write_q)
                                       for q in pair]]


def inputs(kind: str) -> tuple[str, str, bytes, bytes]:
    """(previous JSON, current JSON, previous page, current page) for one kind."""
    cur_text = JSON_CAPTURES[kind].read_text()
    prev_text = json.dumps(_earlier(json.loads(cur_text)), indent=2) + "\n"
    return (prev_text, cur_text, parse_stats(prev_text).page(kind),
            parse_stats(cur_text).page(kind))


def c_sample(prev: native.Page, cur: bytes):
    _page, s = native.sample(prev, cur, QUANTILES)
    return [s.read_q, s.write_q, *[q for pair in zip(s.band_read_q, s.band_write_q)
                                   for q in pair]]


def _qs(lower, upper, counts):
    return [ref.quantile(lower, upper, counts, q) for q in QUANTILES]


def python_sample(prev: dict, cur: bytes):
    d, _reset = ref.delta(prev, ref.decode(cur))
    out = [_qs(d[op]["lower"], d[op]["upper"], d[op]["count"]) for op in ("read", "write")]
    lower, upper = d["write"]["lower"], d["write"]["upper"]
    for band in d["bands"]:
        n = len(band["read"])
        out += [_qs(lower[:n], upper[:n], band["read"]), _qs(lower[:n], upper[:n], band["write"])]
    return out


def _json_hist(prev, cur):
    bins = cur["bins"]
    counts = [(c["count"] - p["count"]) % U32 for p, c in zip(prev["bins"], bins)]
    return _qs([b["lower"] for b in bins], [b["upper"] for b in bins], counts)


def json_sample(prev: dict, cur_text: str):
    """What a script does with `nvme amzn stats -d -o json`: parse, subtract, interpolate."""
    cur = json.loads(cur_text)
    _counters = {k: cur[k] if k == QUEUE else cur[k] - prev[k] for k in COUNTERS}
    out = [_json_hist(prev[f"{op}_io_latency_histogram"], cur[f"{op}_io_latency_histogram"])
           for op in ("read", "write")]
    if "latency_histograms" in cur:
        for pb, cb in zip(prev["latency_histograms"]["io_histograms"],
                          cur["latency_histograms"]["io_histograms"]):
            out += [_json_hist(pb[f"{op}_io_latency_histogram"],
                               cb[f"{op}_io_latency_histogram"]) for op in ("read", "write")]
    return out


def json_c_sample(prev: native.Page, cur_text: str, kind: str):
    """nitrometer's nvme-cli source after the spawn: parse, rebuild the page, C core."""
    return c_sample(prev, parse_stats(cur_text).page(kind))


class RawCalls:
    """The C work alone: nm_sample (decode, delta, quantiles) into preallocated structs, no
    Python objects built. The floor any wrapper of the same core can approach."""

    def __init__(self, prev: native.Page, cur: bytes):
        self.prev, self.cur, self.length = prev._c, ffi.from_buffer(cur), len(cur)
        self.page = ffi.new("nm_page *")
        self.out = ffi.new("nm_summary *")
        self.qs = ffi.new("double[]", list(QUANTILES))

    def __call__(self) -> None:
        lib.nm_sample(self.prev, self.cur, self.length, self.page, self.qs, len(QUANTILES),
                      self.out)

    def quantiles(self):
        n, out = len(QUANTILES), self.out
        flat = ffi.unpack(out.q, (2 + 2 * out.delta.num_bands) * n)
        return [flat[i:i + n] for i in range(0, len(flat), n)]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all((math.isnan(p) and math.isnan(q)) or abs(p - q) <= 1e-6 * max(
            1.0, abs(q)) for p, q in zip(x, y)) for x, y in zip(a, b))


def _loop(fn, *args):
    def run(n: int) -> None:
        for _ in range(n):
            fn(*args)
    return run


def _wrapper_costs(prev: bytes, cur: bytes, rounds: int) -> list[list[str]]:
    """Where the wrapped path's time goes: each native.py call against its bare C call."""
    p = native.decode(prev)
    page, out = ffi.new("nm_page *"), ffi.new("nm_summary *")
    qs, buf = ffi.new("double[]", list(QUANTILES)), ffi.from_buffer(cur)
    times = interleaved({
        "native.decode": (_loop(native.decode, cur), WRAPPER_LOOPS),
        "nm_decode": (_loop(lib.nm_decode, buf, len(cur), page), WRAPPER_LOOPS),
        "native.sample": (_loop(native.sample, p, cur, QUANTILES), WRAPPER_LOOPS),
        "nm_sample": (_loop(lib.nm_sample, p._c, buf, len(cur), page, qs, len(QUANTILES),
                            out), WRAPPER_LOOPS),
    }, rounds)
    rows = []
    for wrapped, bare in (("native.decode", "nm_decode"), ("native.sample", "nm_sample")):
        w, b = median(times[wrapped]), median(times[bare])
        rows.append([f"`{wrapped}`", fmt_ns(w), fmt_ns(b), f"{(w - b) / w:.0%}"])
    return rows


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    rounds = 3 if ctx.quick else 15
    scale = 1 if ctx.quick else 4
    rows, ratios = [], {}
    for kind in ("instance_store", "ebs"):
        prev_text, cur_text, prev, cur = inputs(kind)
        # What the previous poll left behind, in each path's own form.
        prev_page, prev_ref, prev_json = native.decode(prev), ref.decode(prev), json.loads(
            prev_text)
        expected = c_sample(prev_page, cur)
        raw = RawCalls(prev_page, cur)
        raw()
        steps = DeviceSteps(kind)
        for name, got in (("pure Python", python_sample(prev_ref, cur)),
                          ("nvme-cli JSON", json_sample(prev_json, cur_text)),
                          ("nvme-cli JSON", json_c_sample(prev_page, cur_text, kind)),
                          ("raw C", raw.quantiles()),
                          ("one call per device", steps.quantiles())):
            if not _same(got, expected):
                raise RuntimeError(f"{kind}: the {name} path disagrees with the C core")
        times = interleaved({
            ONE_CALL: (steps.wrapped, STEPS * 4 * scale),
            ONE_CALL_BARE: (steps.bare, STEPS * 4 * scale),
            OBSERVE: (steps.observed, STEPS * scale),
            "C core (native.py)": (_loop(c_sample, prev_page, cur), 1000 * scale),
            "C core, bare calls": (_loop(raw), 4000 * scale),
            "pure Python": (_loop(python_sample, prev_ref, cur), 20 * scale),
            "nvme-cli JSON + Python": (_loop(json_sample, prev_json, cur_text), 20 * scale),
            "nvme-cli JSON + C core": (_loop(json_c_sample, prev_page, cur_text, kind),
                                       20 * scale),
        }, rounds)
        base = times[ONE_CALL]
        for path, per_call in times.items():
            ratio = median([t / c for t, c in zip(per_call, base)])
            ratios[(kind, path)] = ratio
            rows.append([kind, path, fmt_ns(median(per_call)), fmt_ns(min(per_call)),
                         f"{ratio:,.2f}x" if ratio < 10 else f"{ratio:,.0f}x"])
        ctx.log(f"core {kind}: one call {fmt_ns(median(base))}, "
                f"Python x{ratios[(kind, 'pure Python')]:.0f}")
    section.add(
        "A sample is what one poll costs per device: decode the new page, take its delta "
        "from the previous page (decoded at the previous poll, in each path's own form), "
        "and p50/p90/p99/p99.9 of reads and writes, overall and per IO-size band (instance "
        "store: 5 bands, so 12 histograms; EBS: 2). Inputs: the recorded "
        "`nvme amzn stats -d -o json` captures (tests/fixtures/nvme-cli-captures) and the pages "
        "they describe. All paths give the same quantiles (checked before timing). Times "
        f"are medians over {rounds} interleaved rounds; \"vs one call\" is the median of "
        "the per-round ratios to the C core as the agent calls it, so machine noise cancels.",
        "",
    )
    section.table(["page", "path", "per sample (median)", "best round", "vs one call"], rows)
    section.add(
        f"\"{ONE_CALL}\" is `devicecore.Device.step(page, t)`, the one call the device tracker "
        "makes per device per poll: decode, the guard's rules, delta, quantiles, IOs per "
        "band and the running totals, into the device's buffers allocated once (the page's "
        "bytes go in without a copy). It folds in the same device's successive pages a "
        f"second apart, each adding the same delta as the other paths take; every {STEPS} "
        "pages the device starts over, and that baseline page is timed too. The pure-Python "
        "path does less (no guard, no totals). \"one call per device, bare\" is the same "
        "`nm_device_step` called straight through cffi: the floor of any wrapper. "
        f"\"{OBSERVE}\" is what the engine does with each page of a device: that call, "
        "then the Interval record (a copy of the step's page and summary and the times "
        "over each limit; rates, quantiles, bands and exceeded shares are built from that "
        "copy when a view first reads them); it is shown for where the rest of a poll's "
        "time goes, not as a target. "
        "\"C core (native.py)\" is `native.sample` (decode, delta, quantiles into new "
        "structs, returning Python objects), and \"C core, bare calls\" its `nm_sample` "
        "into preallocated structs. \"nvme-cli JSON + "
        "Python\" is what a script around `nvme amzn stats -o json` does once it has the "
        "output: json.loads, subtract, interpolate. \"nvme-cli JSON + C core\" is "
        "nitrometer's nvme-cli source after the spawn: parse, rebuild the page, C core. "
        "Neither includes spawning nvme (see 2.).",
        "",
        "Where the time of the wrapped C path goes (instance-store page, same run; medians "
        f"over {rounds} interleaved rounds of {WRAPPER_LOOPS:,} calls each):",
        "",
    )
    section.table(["call", "wrapped", "bare C call", "spent in Python"],
                  _wrapper_costs(*inputs("instance_store")[2:], rounds))
    section.add(
        "What these wrappers add to their bare calls is cffi's cost per call, allocation "
        "and buffer, building the Page and Summary objects, and turning the packed quantiles "
        "into Python lists. The one call per device allocates nothing and builds no Python "
        "object: what its wrapper adds is a method call and cffi's conversion of its four "
        "arguments. Section 3 shows what the whole agent costs per second.",
        "",
    )
    for kind in ("instance_store", "ebs"):
        wrapped = ratios[(kind, "pure Python")]
        bare = wrapped / ratios[(kind, ONE_CALL_BARE)]
        section.target(f"C core vs pure Python ({kind})", ">= 100x cheaper",
                       f"{wrapped:,.0f}x one call as the agent makes it, {bare:,.0f}x bare",
                       wrapped >= 100, f"{rounds} interleaved rounds")
        overhead = 1 / ratios[(kind, ONE_CALL_BARE)]
        section.target(f"C core, one call vs its bare C call ({kind})", "within 1.5x",
                       f"{overhead:.2f}x", overhead <= 1.5, f"{rounds} interleaved rounds")
    return section
