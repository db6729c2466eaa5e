"""Golden exposition files from fixture pages, and promtool on them and on the full registry."""

import gzip
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from devkit.pages import ScriptedSource, device
from nitrometer.agent.exporter import Exporter
from nitrometer.agent.instance import InstanceContext
from tests.agent.conftest import promtool_check
from tests.support.golden import check_golden

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


def run_fleet(rig):
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
    return r


def exposition(rig) -> str:
    return run_fleet(rig).text()


def stable(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines()
                   if not any(name in line for name in VOLATILE))


def test_exposition_matches_golden_file(rig):
    text = stable(exposition(rig))
    check_golden(GOLDEN / "agent.prom", text)


def test_promtool_has_nothing_to_say(rig):
    assert promtool_check((GOLDEN / "agent.prom").read_text()) == ""
    assert promtool_check(exposition(rig)) == ""


def test_full_registry_with_process_metrics_is_clean(rig):
    r = rig([ScriptedSource(device(), None, fleet_script)])
    r.sampler.run(3)
    text = Exporter(r.state).body().decode()
    assert "process_cpu_seconds_total" in text or "python_info" in text
    assert promtool_check(text) == ""


def samples(families) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families for s in family.samples}


def test_openmetrics_carries_the_same_samples(rig):
    r = run_fleet(rig)
    om = r.exporter.body(openmetrics=True).decode()
    assert om.endswith("# EOF\n")
    assert "# TYPE ec2_nvme_read_ops counter" in om  # OpenMetrics names the family bare
    assert samples(parse_om(om)) == samples(parse_text(r.text()))


def test_rendered_once_per_tick_however_many_scrapes(rig):
    r = run_fleet(rig)
    first = r.exporter.body()
    for _ in range(5):
        assert r.exporter.body() is first
    renders = r.exporter.renders
    gz = r.exporter.body(compress=True)
    assert gzip.decompress(gz) == first and r.exporter.renders == renders
    r.sampler.run(1)
    assert r.exporter.body() != first and r.exporter.renders == renders + 1


def test_label_values_are_escaped(rig):
    odd = device("nvme3n1", 'AWS\\quote"new\nline')
    r = rig([ScriptedSource(odd, None, fleet_script)])
    r.sampler.run(2)
    text = r.text()
    assert r'serial="AWS\\quote\"new\nline"' in text
    assert r.value("ec2_nvme_read_ops_total", device="nvme3n1", serial=odd.serial,
                   kind="instance_store") == 800 + 810
    assert promtool_check(text) == ""
