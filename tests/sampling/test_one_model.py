"""One measurement model: the engine makes one immutable record per device per interval
(rates, means, exceeded share and rule, headroom, flags) and everything else renders it.
The source scan holds the package to one place for rates and one for the exceeded rule."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import jsonschema
import pytest

from devkit.pages import PageBuilder, ScriptedSource, device
from nitrometer.agent.sampler import Sampler
from nitrometer.agent.state import AgentState
from nitrometer.collectors.base import FastClock
from nitrometer.ec2 import VolumeLimits
from nitrometer.sampling import Interval, Limits, build_engine, engine_settings
from nitrometer.sampling.device import DeviceTracker

PACKAGE = Path(__file__).parents[2] / "nitrometer"
MODEL = PACKAGE / "sampling" / "interval.py"
# Makes simulated devices' pages (queue length by Little's law); it measures nothing.
SIMULATION = PACKAGE / "sim"
SPANS = {"seconds", "span", "elapsed", "interval_s"}
SHARES = {"share", "exceeded_share", "min_share"}
TIMES_OVER = {"us", "exceeded_us", "fraction", "percent"}
SCHEMA = json.loads((PACKAGE.parent / "docs" / "snapshot.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _names(node: ast.AST) -> set[str]:
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.add(sub.attr)
    return out


def offences(source: str) -> list[tuple[int, str]]:
    """Divisions by a span of time (a delta made a rate), and uses of the exceeded rule:
    `counted`, or a comparison against a share of an interval."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv)) and \
                _names(node.right) & SPANS:
            found.append((node.lineno, "rate"))
        elif isinstance(node, ast.Compare) and _names(node) & SHARES and \
                _names(node) & (SPANS | TIMES_OVER):
            found.append((node.lineno, "exceeded rule"))
        elif isinstance(node, ast.Call) and "counted" in _names(node.func) or \
                isinstance(node, ast.ImportFrom) and \
                any(alias.name == "counted" for alias in node.names):
            found.append((node.lineno, "exceeded rule"))
    return found


def test_the_scan_finds_a_rate_and_the_exceeded_rule_written_again():
    assert offences("iops = ops / seconds\nmbs = nbytes / iv.seconds / 1e6\n") == [
        (1, "rate"), (2, "rate")]
    assert offences("hot = us * 1e-6 >= share * seconds\n") == [(1, "exceeded rule")]
    assert offences("from nitrometer.sampling.interval import counted\n") == [
        (1, "exceeded rule")]
    assert offences("over = iv.exceeded[key].fraction >= interval.share\n") == [
        (1, "exceeded rule")]
    assert offences("busy = cpu_busy_seconds / cpu_seconds\nq = n // 2\n"
                    "ok = 0.0 <= share <= 1.0\ncounted = set(iv.throttled())\n") == []


def test_one_place_makes_rates_and_one_applies_the_exceeded_rule():
    elsewhere = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == MODEL or SIMULATION in path.parents:
            continue
        found = offences(path.read_text())
        if found:
            elsewhere[str(path.relative_to(PACKAGE))] = found
    assert elsewhere == {}
    model = offences(MODEL.read_text())
    # per_second() is the one division by a span; counted() the one rule (defined, then
    # applied to each limit of an interval and to a run's total).
    assert [kind for _, kind in model].count("rate") == 1
    tree = ast.parse(MODEL.read_text())
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert [k for _, k in offences(ast.unparse(defs["per_second"]))] == ["rate"]
    assert [k for _, k in offences(ast.unparse(defs["counted"]))] == ["exceeded rule"]


# --- the record ---------------------------------------------------------------------------

def _tracker(kind="ebs", share=0.01, limits=None) -> DeviceTracker:
    dev = device(kind=kind, serial="vol-0123456789abcdef0" if kind == "ebs" else "AWS1")
    tracker = DeviceTracker(dev, None, share=share, episode_gap=3, ongoing_every=60.0)
    if limits is not None:
        tracker.limits_of = lambda _device: limits
    return tracker


def test_the_record_holds_rates_means_exceeded_and_headroom():
    limits = Limits("gp3", volume_iops=3000, volume_throughput=125e6,
                    instance={"total": {"iops": 40000, "throughput": 1.25e9}})
    tracker, pages = _tracker(limits=limits), PageBuilder("ebs")
    assert tracker.observe(pages.page(), 10.0) is None  # the baseline
    pages.advance(reads=3000, writes=1000, read_size=4096, write_size=16384,
                  exceeded={("volume", "iops"): 15_000, ("volume", "throughput"): 5_000})
    iv = tracker.observe(pages.page(), 12.0)
    assert iv.seconds == 2.0 and iv.start == 10.0 and iv.end == 12.0
    read = iv.op("read")
    assert (read.ops, read.iops, read.throughput) == (3000, 1500.0, 1500 * 4096.0)
    assert read.mean_us == pages.bounds[4][0] + 1 and read.avg_request_bytes == 4096
    iops = iv.exceeded[("volume", "iops")]
    assert (iops.us, iops.fraction, iops.counted) == (15_000, 0.0075, False)  # < 1 % of 2 s
    assert iv.throttled() == [] and iv.exceeded_us[("volume", "iops")] == 15_000
    headroom = {(h.scope, h.op, h.limit): round(h.percent, 3) for h in iv.headroom}
    assert headroom == {("volume", "total", "iops"): round(100 * 2000 / 3000, 3),
                        ("volume", "total", "throughput"):
                            round(100 * (1500 * 4096 + 500 * 16384) / 125e6, 3),
                        ("instance", "total", "iops"): 5.0,
                        ("instance", "total", "throughput"):
                            round(100 * (1500 * 4096 + 500 * 16384) / 1.25e9, 3)}
    with pytest.raises(AttributeError):
        iv.seconds = 1.0


def test_the_share_rule_decides_exceeded_once_for_every_view():
    tracker, pages = _tracker(share=0.5), PageBuilder("ebs")
    tracker.observe(pages.page(), 0.0)
    pages.advance(reads=10, exceeded={("volume", "iops"): 600_000,
                                      ("instance", "iops"): 400_000})
    iv = tracker.observe(pages.page(), 1.0)
    assert iv.throttled() == [("volume", "iops")]
    row = iv.to_json("interval", 1_700_000_000.0, 1.0)
    VALIDATOR.validate(row)
    assert row["exceeded"]["volume_iops"] == {"us": 600_000, "percent": 60.0, "counted": True}
    assert row["exceeded"]["instance_iops"]["counted"] is False
    assert row["headroom"] == []  # no limit known


def test_a_time_counter_that_went_down_has_no_mean_and_says_which_field():
    tracker, pages = _tracker(kind="instance_store"), PageBuilder("instance_store")
    for t in (0.0, 1.0):
        pages.advance(reads=100, writes=100)
        tracker.observe(pages.page(), t)
    pages.advance(reads=100, writes=100)
    pages.counters["total_read_time"] -= 1_000  # below the last page's, ops still counting
    iv = tracker.observe(pages.page(), 2.0)
    assert "total_read_time" in iv.glitches and not iv.reset
    assert iv.op("read").time_us is None and iv.op("read").mean_us is None
    assert iv.op("read").iops == 100.0 and iv.op("write").mean_us is not None
    row = iv.to_json("interval", 1_700_000_000.0, 1.0)
    VALIDATOR.validate(row)
    assert row["read"]["mean_us"] is None and row["read"]["time_us"] is None
    assert "total_read_time" in row["glitches"] and row["confirmed"] is False


def test_a_page_as_totals_has_no_rates_and_no_verdict():
    pages = PageBuilder("instance_store")
    pages.advance(reads=50, exceeded={("instance", "iops"): 9})
    from nitrometer import native

    page = native.decode(pages.page())
    iv = Interval.from_page(device(), page)
    assert iv.seconds is None and iv.op("read").iops is None and iv.op("read").ops == 50
    assert iv.exceeded[("instance", "iops")].counted is None and iv.throttled() == []
    assert len(iv.bands) == len(page.bands)


# --- one factory ---------------------------------------------------------------------------

def test_the_agent_and_the_commands_build_the_engine_the_same_way():
    from nitrometer.commands import devices

    settings = engine_settings(interval=2.0, exceeded_share=0.05)
    assert build_engine(settings=settings).settings == \
        build_engine(interval=2.0, exceeded_share=0.05).settings
    with pytest.raises(TypeError):
        build_engine(settings=settings, interval=1.0)
    state = AgentState()
    clock = FastClock(0)
    src = ScriptedSource(device(kind="ebs", serial="vol-1"), clock,
                         lambda b, i: b.advance(reads=100))
    sampler = Sampler(state, lambda: [src], settings=settings, clock=clock)
    assert sampler.engine.settings == settings
    assert sampler.engine.limits_of == state.limits_of
    parser = __import__("argparse").ArgumentParser()
    devices.add_source_options(parser)
    args = parser.parse_args(["--source", "simulate:i3en.xlarge", "--speed", "0",
                              "--exceeded.min-share", "5%"])
    cli = devices.open_engine(args, 2.0)
    try:
        assert cli.settings == settings
    finally:
        cli.close()


def test_the_agent_measures_headroom_against_what_it_knows():
    from nitrometer.collectors.volumes import VolumeDirectory

    state = AgentState()
    state.volumes = VolumeDirectory({"vol-1": VolumeLimits("gp3", 3000, 125e6, "config")})
    clock = FastClock(0)
    src = ScriptedSource(device(kind="ebs", serial="vol-1"), clock,
                         lambda b, i: b.advance(reads=300))
    sampler = Sampler(state, lambda: [src], settings=engine_settings(), clock=clock)
    sampler.engine.tick()
    clock.sleep_until(clock.monotonic() + 1.0)
    iv = sampler.engine.tick().intervals[0]
    assert [(h.scope, h.limit, round(h.percent, 6)) for h in iv.headroom] == [
        ("volume", "iops", round(100 * 300 / iv.seconds / 3000, 6)),
        ("volume", "throughput", round(100 * 300 * 4096 / iv.seconds / 125e6, 6))]


@pytest.mark.parametrize("confirmed", [True, False])
def test_a_held_page_is_flagged_on_the_interval_that_decides_it(confirmed):
    tracker, pages = _tracker(kind="instance_store"), PageBuilder("instance_store")
    for t in (0.0, 1.0):
        pages.advance(reads=100)
        tracker.observe(pages.page(), t)
    pages.advance(reads=100)
    pages.add("total_read_ops", 10**12)  # no device does that in a second
    assert tracker.observe(pages.page(), 2.0) is None and tracker.holding
    if not confirmed:
        pages.add("total_read_ops", -10**12)  # back on track: the spike was transient
    pages.advance(reads=100)
    iv = tracker.observe(pages.page(), 3.0)
    assert (iv.start, iv.seconds, iv.confirmed) == (1.0, 2.0, confirmed)
    assert iv.dropped == (() if confirmed else ("total_read_ops",))
    assert iv.op("read").ops == (10**12 + 200 if confirmed else 200)
    row = iv.to_json("interval", 1_700_000_000.0, 3.0)
    VALIDATOR.validate(row)
    assert (row["confirmed"], row["dropped"]) == (confirmed, list(iv.dropped))
