"""`nitrometer savings --measured` on two simulated fleets backfilled into a real Prometheus
under the agent's own metric names: one where Graviton and x86 hosts run at the same load,
one where the Graviton hosts run at half the x86 load."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests

from nitrometer import metrics
from nitrometer.cli import main
from nitrometer.dashboards import nih, rules
from nitrometer.metrics import family
from tests.savings.fleets import TRUE_REDUCTION_PCT, fleet
from tests.support.prometheus import PrometheusServer, backfill_openmetrics

pytestmark = pytest.mark.prometheus

STEP = 60
SPAN = 2 * 3600
LOADS = {"equal-load": (0.5, 0.5), "half-load": (0.6, 0.3)}
HOSTS = fleet(np.random.default_rng(2), LOADS, hosts_per_side=8, hours=SPAN / 3600)


def _openmetrics(end: int, hosts=HOSTS) -> str:
    """Every host's counters grow linearly to what the CPU model says it did over SPAN."""
    per_second = {
        family(metrics.INSTANCE_SECONDS): lambda h: 1.0,
        family(metrics.NORMALIZED_SECONDS): lambda h: h.nf,
        family(metrics.COST): lambda h: h.price / 3600,
        family(metrics.READ_OPS): lambda h: 0.75 * h.work / SPAN,
        family(metrics.WRITE_OPS): lambda h: 0.25 * h.work / SPAN,
        family(metrics.HOST_CPU_BUSY_SECONDS): lambda h: h.busy_seconds / SPAN,
        family(metrics.HOST_CPU_SECONDS): lambda h: h.cpu_seconds / SPAN,
    }
    out = [f"# TYPE {metrics.INSTANCE_INFO} gauge"]
    times = range(end - SPAN, end + 1, STEP)
    for h in hosts:
        # `service` is a target label, on every series of the host, like `job`
        labels = (f'instance="{h.instance}",job="{h.job}",instance_id="i-{h.instance}",'
                  f'instance_type="{h.instance_type}",family="{h.instance_type.split(".")[0]}",'
                  f'size="xlarge",arch="{h.arch}",region="us-east-1",az="us-east-1a",'
                  f'service="{h.job}-svc"')
        out += [f"{metrics.INSTANCE_INFO}{{{labels}}} 1 {t}" for t in times]
    for base, rate in per_second.items():
        out.append(f"# TYPE {base} counter")
        for h in hosts:
            labels = f'instance="{h.instance}",job="{h.job}",service="{h.job}-svc"'
            if base in (family(metrics.READ_OPS), family(metrics.WRITE_OPS)):
                labels += f',device="nvme1n1",serial="vol-{h.instance[:8]}",kind="ebs"'
            out += [f"{base}_total{{{labels}}} {rate(h) * (t - end + SPAN)} {t}" for t in times]
    return "\n".join(out) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("measured")
    end = (int(time.time()) - 3 * 3600) // STEP * STEP
    storage = backfill_openmetrics(tmp, _openmetrics(end))
    with PrometheusServer(tmp, targets=[], storage_dir=storage) as server:
        yield server, end


def _savings(prom, *args, fmt="json") -> tuple[int, str, str]:
    server, end = prom
    return main(["savings", "--prometheus", server.url, "--measured", "--start",
                 str(end - SPAN), "--end", str(end), "-o", fmt, *args])


def _document(prom, capsys, *args) -> dict:
    assert _savings(prom, *args) == 0
    return json.loads(capsys.readouterr().out)


def _contains(interval, value) -> bool:
    return interval[0] <= value <= interval[1]


def test_equal_and_half_load_groups(prom, capsys):
    doc = _document(prom, capsys)
    measured = doc["measured"]
    assert measured["basis"] == "equal_load" and measured["group_by"] == ["job"]
    groups = {g["labels"]["job"]: g for g in measured["groups"]}
    assert set(groups) == set(LOADS)
    for job in LOADS:
        group = groups[job]
        assert group["comparable"] and group["graviton"]["hosts"] == group["x86"]["hosts"] == 8
        assert group["x86"]["instance_hours"] == pytest.approx(16, rel=0.01)
        assert _contains(group["equal_load"]["interval_pct"], TRUE_REDUCTION_PCT), job
    # At equal load the raw ratio agrees; at half load it is measurably wrong: Graviton seems
    # to need a third more hours, not a third fewer.
    assert _contains(groups["equal-load"]["raw"]["interval_pct"], TRUE_REDUCTION_PCT)
    half_raw = groups["half-load"]["raw"]
    assert half_raw["interval_pct"][1] < 0 < TRUE_REDUCTION_PCT
    graviton_busy = groups["half-load"]["graviton"]["cpu_busy_share"]
    assert graviton_busy == pytest.approx(0.5 * groups["half-load"]["x86"]["cpu_busy_share"],
                                          rel=0.15)
    # The fleet figure is what the model used, and lies within its interval.
    assert doc["nih_reduction_source"] == "measured"
    assert doc["nih_reduction_pct"] == pytest.approx(measured["nih_reduction_pct"], abs=1e-6)
    assert _contains(measured["interval_pct"], TRUE_REDUCTION_PCT)
    assert measured["raw"]["nih_reduction_pct"] < 10
    assert doc["totals"]["additional_savings"] == pytest.approx(
        doc["totals"]["graviton_cost"] * measured["nih_reduction_pct"] / 100, rel=1e-6)


def test_group_by_a_target_label(prom, capsys):
    doc = _document(prom, capsys, "--group-by", "service")
    labels = sorted(g["labels"]["service"] for g in doc["measured"]["groups"])
    assert labels == ["equal-load-svc", "half-load-svc"]
    # one group of everything mixes the half-load Graviton hosts with every x86 host:
    # still right at equal load, as the loads cancel host by host
    doc = _document(prom, capsys, "--group-by", "region")
    assert len(doc["measured"]["groups"]) == 1
    assert _contains(doc["measured"]["interval_pct"], TRUE_REDUCTION_PCT)


def test_table_and_html_show_the_interval(prom, capsys):
    assert _savings(prom, fmt="table") == 0
    table = capsys.readouterr().out
    assert "90 % interval" in table and "measured at equal load" in table
    assert "job=half-load" in table and "Measured by comparison group" in table
    assert _savings(prom, fmt="html") == 0
    html = capsys.readouterr().out
    assert "Measured NIH reduction by comparison group (90 % intervals)" in html
    assert "job=equal-load" in html


def test_too_few_hosts_is_refused_in_one_line(prom, capsys):
    assert _savings(prom, "--min-hosts", "9") == 2
    err = capsys.readouterr().err
    assert "too little data" in err and 'job="half-load": graviton has 8 hosts' in err
    assert len(err.strip().splitlines()) == 1
    assert _savings(prom, "--group-by", "bad-label") == 2
    assert "not a label name" in capsys.readouterr().err
    assert _savings(prom, "--confidence", "100") == 2


def test_a_mistyped_group_label_names_the_labels(prom, capsys):
    assert _savings(prom, "--group-by", "servce") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "servce" in err and "service" in err and "instance_type" in err


def _inlined_nih_rules() -> dict[str, str]:
    """Each NIH recording rule's expression with the recorded series it reads replaced by
    their own expressions: what the rules record, evaluable at any past time."""
    exprs: dict[str, str] = {}
    for rule in rules.nih_rules()["rules"]:
        expr = rule["expr"]
        for name in sorted(exprs, key=len, reverse=True):
            expr = expr.replace(name, f"({exprs[name]})")
        exprs[rule["record"]] = expr
    return exprs


def test_cli_and_recording_rules_agree(prom, capsys):
    """The same hosts, hour and definition: the rules' figures and 90 % intervals equal the
    CLI's (docs/savings.md, "Measured NIH reduction")."""
    server, end = prom
    window = 3600  # the rules' rolling hour
    assert main(["savings", "--prometheus", server.url, "--measured", "--start",
                 str(end - window), "--end", str(end), "-o", "json"]) == 0
    measured = json.loads(capsys.readouterr().out)["measured"]
    assert measured["interval_method"] == "normal" and measured["min_hours"] == nih.MIN_HOURS
    exprs = _inlined_nih_rules()

    def value(record: str) -> dict[str, float]:
        response = requests.post(f"{server.url}/api/v1/query",
                                 data={"query": exprs[record], "time": end}, timeout=60)
        result = response.json()["data"]["result"]
        return {r["metric"].get("job", ""): float(r["value"][1]) for r in result}

    assert value(rules.NIH_FLEET)[""] == pytest.approx(measured["nih_reduction_pct"], rel=1e-6)
    low, high = measured["interval_pct"]
    assert value(rules.NIH_FLEET_BOUNDS[-1])[""] == pytest.approx(low, rel=1e-6)
    assert value(rules.NIH_FLEET_BOUNDS[1])[""] == pytest.approx(high, rel=1e-6)
    groups = {g["labels"]["job"]: g for g in measured["groups"]}
    for basis in ("equal_load", "raw"):
        assert value(rules.NIH_GROUP_REDUCTION[basis]) == pytest.approx(
            {job: g[basis]["nih_reduction_pct"] for job, g in groups.items()}, rel=1e-6)
    lows = value(rules.NIH_GROUP_BOUNDS[-1])
    assert lows == pytest.approx({job: g["equal_load"]["interval_pct"][0]
                                  for job, g in groups.items()}, rel=1e-6)
    # eight hosts a side: a real spread, not an interval closed on the figure
    assert high - low > 1


def test_one_host_with_an_impossible_cpu_share_is_left_out(tmp_path, capsys):
    hosts = fleet(np.random.default_rng(7), {"db": (0.5, 0.5)}, hosts_per_side=4,
                  hours=SPAN / 3600)
    broken = next(h for h in hosts if h.arch == "x86_64")
    # busy seconds 9.33 times the CPU seconds, a broken counter; its work stays the same
    broken.efficiency *= 9.33 / broken.load
    broken.load = 9.33
    end = (int(time.time()) - 3 * 3600) // STEP * STEP
    storage = backfill_openmetrics(tmp_path, _openmetrics(end, hosts))
    with PrometheusServer(tmp_path, targets=[], storage_dir=storage) as server:
        code = main(["savings", "--prometheus", server.url, "--measured", "--start",
                     str(end - SPAN), "--end", str(end), "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    measured = json.loads(out)["measured"]
    assert measured["basis"] == "equal_load"
    assert measured["x86"]["hosts_with_cpu"] == 3
    assert _contains(measured["interval_pct"], TRUE_REDUCTION_PCT)
    assert f"host {broken.instance} (job db): CPU busy share 9.33" in err
