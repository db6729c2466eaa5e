"""Fleet usage and the measured NIH reduction from a real Prometheus on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time

import pytest

from nitrometer import metrics
from nitrometer.cli import main
from nitrometer.errors import NitrometerError
from nitrometer.metrics import family
from nitrometer.savings.prom import Prometheus, fleet_hosts, measure_nih_reduction
from tests.support.prometheus import PrometheusServer, backfill_openmetrics

pytestmark = pytest.mark.prometheus

STEP = 60
SPAN = 2 * 3600
# host -> (instance type, arch, normalization factor, on-demand rate, IO ops per second, service)
HOSTS = {
    "g1:9720": ("m6g.xlarge", "arm64", 8, 0.154, 250.0, "db"),
    "g2:9720": ("m6g.xlarge", "arm64", 8, 0.154, 250.0, "web"),
    "x1:9720": ("m5.xlarge", "x86_64", 8, 0.192, 200.0, "db"),
    "x2:9720": ("m5.xlarge", "x86_64", 8, 0.192, 100.0, "web"),
}


# x86 host -> op -> (peak IOPS, peak bytes/s) of its EBS volume
PEAKS = {"x1:9720": {"read": (4000, 60e6), "write": (1500, 40e6)},
         "x2:9720": {"read": (5000, 50e6), "write": (2000, 20e6)}}


def _openmetrics(end: int) -> str:
    """Counters that grow linearly, so work per normalized hour has a known ratio."""
    times = range(end - SPAN, end + 1, STEP)
    families = {metrics.INSTANCE_INFO: ("gauge", lambda h, t: 1),
                family(metrics.INSTANCE_SECONDS): ("counter", lambda h, t: t),
                family(metrics.NORMALIZED_SECONDS): ("counter", lambda h, t: h[2] * t),
                family(metrics.COST): ("counter", lambda h, t: h[3] * t / 3600),
                family(metrics.READ_OPS): ("counter", lambda h, t: 0.75 * h[4] * t),
                family(metrics.WRITE_OPS): ("counter", lambda h, t: 0.25 * h[4] * t)}
    out = []
    for base, (kind, value) in families.items():
        out.append(f"# TYPE {base} {kind}")
        name = base if kind == "gauge" else f"{base}_total"
        for instance, host in HOSTS.items():
            labels = f'instance="{instance}",job="nitrometer"'
            if name == metrics.INSTANCE_INFO:
                itype = host[0]
                labels += (f',instance_id="i-{instance[:2]}",instance_type="{itype}",'
                           f'family="{itype.split(".")[0]}",size="xlarge",arch="{host[1]}",'
                           'region="us-east-1",az="us-east-1a"')
            elif name in (metrics.READ_OPS, metrics.WRITE_OPS):
                labels += f',device="nvme1n1",serial="vol-{instance[:2]}",kind="ebs",' \
                          f'service="{host[5]}"'
            for t in times:
                elapsed = t - (end - SPAN)
                out.append(f"{name}{{{labels}}} {value(host, elapsed)} {t}")
    for name, index in ((metrics.PEAK_IOPS, 0), (metrics.PEAK_THROUGHPUT, 1)):
        out.append(f"# TYPE {name} gauge")
        for instance, per_op in PEAKS.items():
            for op, values in per_op.items():
                labels = (f'instance="{instance}",job="nitrometer",device="nvme1n1",'
                          f'serial="vol-{instance[:2]}",kind="ebs",op="{op}"')
                for t in times:  # the peak is reached once, in the middle of the range
                    value = values[index] if t == times[len(times) // 2] else values[index] / 4
                    out.append(f"{name}{{{labels}}} {value} {t}")
    return "\n".join(out) + "\n# EOF\n"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    end = (int(time.time()) - 3 * 3600) // STEP * STEP
    storage = backfill_openmetrics(tmp, _openmetrics(end))
    with PrometheusServer(tmp, targets=[], storage_dir=storage) as prom:
        yield prom, end


def test_measured_reduction_matches_the_ratio(fleet):
    prom, end = fleet
    client = Prometheus(prom.url)
    measured = measure_nih_reduction(client, end - SPAN, end)
    # Graviton: 250 ops/s per 8 NIH/h on both hosts; x86: (200 + 100) / 2 = 150 per 8 NIH/h.
    assert measured["nih_reduction_pct"] == pytest.approx(100 * (1 - 150 / 250), abs=1e-6)
    assert measured["graviton"]["hosts"] == measured["x86"]["hosts"] == 2
    # these hosts have no CPU counters: the raw figure, and the report says so
    assert measured["basis"] == "raw" and measured["equal_load"]["nih_reduction_pct"] is None
    assert any("no comparison group has CPU counters" in note for note in measured["notes"])
    assert measured["graviton"]["instance_hours"] == pytest.approx(4.0, rel=0.05)


def test_label_filter_compares_one_service(fleet):
    prom, end = fleet
    measured = measure_nih_reduction(Prometheus(prom.url), end - SPAN, end,
                                     label_filter='service="db"')
    assert measured["nih_reduction_pct"] == pytest.approx(100 * (1 - 200 / 250), abs=1e-6)
    assert measured["x86"]["hosts"] == 1


def test_too_little_data_is_refused(fleet):
    prom, end = fleet
    with pytest.raises(NitrometerError, match="too little data.*graviton has 2 hosts"):
        measure_nih_reduction(Prometheus(prom.url), end - SPAN, end, min_hours=100)
    with pytest.raises(NitrometerError, match="too little data"):
        measure_nih_reduction(Prometheus(prom.url), end - SPAN, end,
                              label_filter='service="nothing"')


def test_fleet_usage_and_measured_model_through_the_cli(fleet, tmp_path, capsys):
    prom, end = fleet
    hosts = fleet_hosts(Prometheus(prom.url), end - SPAN, end)
    assert sorted(h.instance_type for h in hosts) == ["m5.xlarge", "m5.xlarge",
                                                      "m6g.xlarge", "m6g.xlarge"]
    out = tmp_path / "report.json"
    code = main(["savings", "--prometheus", prom.url, "--measured", "--start",
                 str(end - SPAN), "--end", str(end), "-o", "json", "--out", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["nih_reduction_source"] == "measured"
    assert doc["nih_reduction_pct"] == pytest.approx(40.0, abs=1e-6)
    reasons = {e["reason"]: e["lines"] for e in doc["exclusions"]}
    assert reasons["eligible"] == 2 and reasons["already Graviton"] == 2
    totals = doc["totals"]
    # x86 hosts cost 0.192/h for ~4 h; on m6g.xlarge the same hours cost 0.154/h
    assert totals["graviton_cost"] / totals["cost"] == pytest.approx(0.154 / 0.192, rel=1e-6)
    assert totals["additional_savings"] == pytest.approx(0.4 * totals["graviton_cost"])


def test_unreachable_prometheus_is_one_line(capsys):
    code = main(["savings", "--prometheus", "http://127.0.0.1:9", "--range", "1h"])
    assert code == 2
    assert capsys.readouterr().err == ("nitrometer: cannot reach Prometheus at "
                                       "http://127.0.0.1:9: connection refused (nothing "
                                       "listens there)\n")


def test_storage_fit_holds_peaks_against_the_target(fleet, capsys):
    prom, end = fleet
    code = main(["savings", "--prometheus", prom.url, "--start", str(end - SPAN), "--end",
                 str(end), "-o", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    (fit,) = doc["storage_fit"]
    assert (fit["instance_type"], fit["target_type"], fit["hosts"]) == ("m5.xlarge",
                                                                       "m6g.xlarge", 2)
    checks = {c["metric"]: c for c in fit["checks"]}
    # m6g.xlarge: 6000 IOPS and 148.5 MB/s baseline on EBS; x2 peaks at 5000 + 2000 IOPS
    assert checks["iops"]["limit"] == 6000 and checks["iops"]["peak"] == pytest.approx(7000)
    assert checks["iops"]["fits"] is False
    assert checks["iops"]["headroom_pct"] == pytest.approx(100 * (6000 - 7000) / 6000)
    assert checks["throughput_bytes_per_second"]["peak"] == pytest.approx(100e6)
    assert checks["throughput_bytes_per_second"]["fits"] is True
    assert fit["fits"] is False
    code = main(["savings", "--prometheus", prom.url, "--start", str(end - SPAN), "--end",
                 str(end)])
    table = capsys.readouterr().out
    assert re.search(r"m5\.xlarge\s+m6g\.xlarge\s+2\s+EBS IOPS\s+7,000\s+6,000\s+-16\.7 %"
                     r"\s+over by 1,000", table)
    assert re.search(r"EBS throughput\s+100\.0 MB/s\s+148\.5 MB/s\s+32\.7 %"
                     r"\s+fits", table)
