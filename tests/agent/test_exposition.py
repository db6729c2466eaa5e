"""Golden exposition files from fixture pages, and promtool on them and on the full registry."""

import os
from pathlib import Path

from prometheus_client import generate_latest

from nitrometer.agent.exporter import make_registry
from nitrometer.agent.instance import InstanceContext
from tests.agent.conftest import promtool_check
from tests.agent.pages import ScriptedSource, device

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
# These carry the Python version and real poll timings: not reproducible, checked elsewhere.
VOLATILE = ("nitrometer_build_info", "nitrometer_poll_duration_seconds")


def fleet_script(builder, i):
    over = {("instance", "throughput"): 250_000} if 3 <= i < 5 else None
    builder.advance(reads=800 + 10 * i, writes=300, read_bin=5, write_bin=9 + i % 2,
                    read_size=4096, write_size=65536, band=1 if i % 3 else 4,
                    exceeded=over, queue=i % 4)


def ebs_script(builder, i):
    over = {("volume", "iops"): 1_000_000} if i >= 4 else None
    builder.advance(reads=3000, writes=1000, read_bin=9, write_bin=10, exceeded=over,
                    queue=8)


def exposition(rig) -> str:
    sources = [ScriptedSource(device(), None, fleet_script),
               ScriptedSource(device("nvme2n1", "vol-0123456789abcdef0", "ebs"), None,
                              ebs_script)]
    r = rig(sources)
    r.state.instance = InstanceContext(
        instance_id="i-0123456789abcdef0", instance_type="i3en.xlarge", family="i3en",
        size="xlarge", arch="x86_64", region="us-east-1", az="us-east-1a", source="imds",
        price=0.452, normalization_factor=8.0, graviton_type="i4g.xlarge",
        graviton_price=0.30888)
    r.state.host = {"busy": 0.25, "iowait": 0.125}
    r.sampler.run(8)
    return generate_latest(r.registry).decode()


def stable(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines()
                   if not any(name in line for name in VOLATILE))


def test_exposition_matches_golden_file(rig):
    text = stable(exposition(rig))
    golden = GOLDEN / "agent.prom"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_promtool_has_nothing_to_say(rig):
    assert promtool_check((GOLDEN / "agent.prom").read_text()) == ""
    assert promtool_check(exposition(rig)) == ""


def test_full_registry_with_process_metrics_is_clean(rig):
    r = rig([ScriptedSource(device(), None, fleet_script)])
    r.sampler.run(3)
    text = generate_latest(make_registry(r.state)).decode()
    assert "process_cpu_seconds_total" in text or "python_info" in text
    assert promtool_check(text) == ""
