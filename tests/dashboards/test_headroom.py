"""Headroom end to end in a real Prometheus: the recorded shares of each limit are the
agents' counters over the limit gauges, one series per EBS volume and per instance, kind and
op, and the dashboards' "% of limit" panels agree with them."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nitrometer import metrics as m
from nitrometer.dashboards import rules as r
from tests.dashboards import grafana

LIMIT_OF = {m.INSTANCE_IOPS_LIMIT: "iops", m.INSTANCE_THROUGHPUT_LIMIT: "throughput"}

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]


def agent_devices(fleet) -> dict[str, tuple[list[dict], set]]:
    """Per agent: its devices, and the (kind, op, limit) of the instance limits it exports."""
    found = {}
    for target in fleet.targets.values():
        with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        limits, devices = set(), []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == m.READ_OPS:
                    devices.append({k: sample.labels[k] for k in m.DEVICE_LABELS})
                if sample.name in LIMIT_OF and sample.value > 0:
                    limits.add((sample.labels["kind"], sample.labels["op"],
                                LIMIT_OF[sample.name]))
        found[target] = (devices, limits)
    return found


def test_a_share_per_ebs_volume_and_per_instance_kind_and_op(fleet):
    fleet.prom.wait_for(r.INSTANCE_UTILISATION, timeout=30)
    fleet.prom.wait_for(r.VOLUME_UTILISATION, timeout=30)
    volumes = {(s["metric"]["instance"], s["metric"]["device"], s["metric"]["limit"])
               for s in fleet.prom.query(r.VOLUME_UTILISATION)}
    instances = {(s["metric"]["instance"], s["metric"]["kind"], s["metric"]["op"],
                  s["metric"]["limit"]) for s in fleet.prom.query(r.INSTANCE_UTILISATION)}
    want_volumes, want_instances = set(), set()
    for target, (devs, limits) in agent_devices(fleet).items():
        want_volumes |= {(target, d["device"], limit) for d in devs if d["kind"] == "ebs"
                         for limit in m.LIMITS}
        kinds = {d["kind"] for d in devs}
        want_instances |= {(target, kind, op, limit) for kind, op, limit in limits
                           if kind in kinds}
    assert want_volumes and volumes == want_volumes  # instance-store disks have no such limit
    # Instance store: reads and writes each against their own limit; EBS: both together.
    assert {(kind, op) for _t, kind, op, _l in want_instances} >= {
        ("instance_store", "read"), ("instance_store", "write"), ("ebs", "total")}
    assert instances == want_instances


def _at_the_rules_time(fleet, record: str, direct: str, on: str) -> tuple[list, list]:
    """The recorded series and the same computation, both at the rule's last evaluation."""
    stamp = fleet.prom.query(f"max(timestamp({record}))")
    at = float(stamp[0]["value"][1])
    return (fleet.prom.query(record, at=at),
            fleet.prom.query(f"({direct}) - on ({on}) {record}", at=at))


@pytest.mark.parametrize("record, direct, on", [
    (f'{r.VOLUME_UTILISATION}{{limit="iops"}}',
     f"(sum by ({r.DEVICE_KEY}) (rate({m.READ_OPS}[5m])) + sum by ({r.DEVICE_KEY}) "
     f"(rate({m.WRITE_OPS}[5m]))) / on ({r.DEVICE_KEY}) max by ({r.DEVICE_KEY}) "
     f"({m.VOLUME_IOPS_LIMIT})", r.DEVICE_KEY),
    (f'{r.INSTANCE_UTILISATION}{{kind="instance_store", op="read", limit="iops"}}',
     f"sum by (instance, job, kind) (rate({m.READ_OPS}{{kind=\"instance_store\"}}[5m])) / "
     f"on (instance, job, kind) max by (instance, job, kind) "
     f"({m.INSTANCE_IOPS_LIMIT}{{op=\"read\"}})", "instance, job, kind"),
    (f'{r.INSTANCE_UTILISATION}{{kind="ebs", op="total", limit="throughput"}}',
     f"(sum by (instance, job, kind) (rate({m.READ_BYTES}{{kind=\"ebs\"}}[5m])) + "
     f"sum by (instance, job, kind) (rate({m.WRITE_BYTES}{{kind=\"ebs\"}}[5m]))) / "
     f"on (instance, job, kind) max by (instance, job, kind) "
     f"({m.INSTANCE_THROUGHPUT_LIMIT}{{op=\"total\"}})", "instance, job, kind"),
])
def test_recorded_share_is_demand_over_the_limit(fleet, record, direct, on):
    # A scrape committed just after the rule ran can change the direct figure: try again.
    for _ in range(5):
        recorded, differences = _at_the_rules_time(fleet, record, direct, on)
        if recorded and all(abs(float(d["value"][1])) < 1e-9 for d in differences):
            break
        time.sleep(1.5)
    assert recorded and len(differences) == len(recorded), (recorded, differences)
    assert all(abs(float(d["value"][1])) < 1e-9 for d in differences), differences
    assert all(0 < float(s["value"][1]) < 1 for s in recorded), recorded


def test_device_dashboard_share_matches_the_rule(fleet):
    """The panel (over $__rate_interval) and the rule (over 5 m) see the same few seconds of
    data here, so they agree closely; a wrong counter or limit would be far off."""
    dash = grafana.dashboards()["dashboards/nitrometer-device.json"]
    panel = next(p for p in grafana.data_panels(dash)
                 if p["title"] == "Volume IOPS, % of provisioned")
    values = grafana.default_values(dash) | {"__rate_interval": "5m"}
    expr = grafana.substitute(panel["targets"][0]["expr"], values)
    shown = {(s["metric"]["instance"], s["metric"]["device"]): float(s["value"][1])
             for s in fleet.prom.query(expr)}
    recorded = {(s["metric"]["instance"], s["metric"]["device"]): float(s["value"][1])
                for s in fleet.prom.query(f'{r.VOLUME_UTILISATION}{{limit="iops"}}')}
    assert shown and shown.keys() == recorded.keys()
    for key, value in shown.items():
        assert value == pytest.approx(recorded[key], rel=0.25), key
