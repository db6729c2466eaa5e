"""The device dashboard's health panels against a host where a device fails: an agent reading
two fake NVMe devices through the real ioctl path (LD_PRELOAD shim), one of which starts
answering EIO, scraped by a real Prometheus on 127.0.0.1. The simulated fleet never fails,
so this is where the error and up panels show what they are for."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest

from devkit.fakedev import MODEL_INSTANCE_STORE, FakeNvme, build_shim, identify_bytes
from devkit.fakedev.pages import instance_store_page
from nitrometer import metrics as m
from tests.dashboards import grafana
from tests.dashboards.conftest import start_agent_process
from tests.dashboards.test_queries import check_shape, run_query
from tests.support.processes import stop
from tests.support.prometheus import PrometheusServer, free_port

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

DEVICES = ("nvme1n1", "nvme2n1")
FAILING = "nvme2n1"


def fake_host(root, shim) -> tuple[FakeNvme, list[str]]:
    """Two instance-store devices and the sysfs tree discovery walks; the agent's args."""
    sysfs, dev = root / "sys", root / "dev"
    dev.mkdir(parents=True)
    fake = FakeNvme(root / "fake", shim)
    for i, name in enumerate(DEVICES, start=1):
        serial = f"AWS{i:017d}"
        ctrl = sysfs / "class" / "nvme" / f"nvme{i}"
        (ctrl / name).mkdir(parents=True)
        (ctrl / name / "nsid").write_text("1\n")
        for attr, value in (("model", MODEL_INSTANCE_STORE), ("serial", serial),
                            ("firmware_rev", "0"), ("state", "live")):
            (ctrl / attr).write_text(value + "\n")
        fake.add(str(dev / name), page=instance_store_page(read_ops=1000 * i, write_ops=500 * i),
                 identify=identify_bytes(serial, MODEL_INSTANCE_STORE))
    return fake, ["--source=ioctl", f"--path.sysfs={sysfs}", f"--path.dev={dev}",
                  "--instance.type=i3en.xlarge"]


@pytest.fixture(scope="module")
def failing_host(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("failing-host")
    fake, args = fake_host(tmp / "host", build_shim(tmp))
    port = free_port()
    agent = start_agent_process(
        [sys.executable, "-m", "nitrometer", "run", *args, "--poll.interval", "1s",
         "--web.listen-address", f"127.0.0.1:{port}"], port, tmp / "agent.log", fake.env())
    try:
        with PrometheusServer(tmp, targets=[f"127.0.0.1:{port}"], scrape_interval="1s") as prom:
            started = time.time()
            prom.wait_for(f"count({m.DEVICE_UP} == 1) == 2", timeout=60)
            fake.fail(str(tmp / "host" / "dev" / FAILING), "errno=EIO")
            # Enough failed reads that rates over a few scrapes see them.
            prom.wait_for(f"count_over_time({m.DEVICE_ERRORS}[5m]) >= 5", timeout=60)
            prom.wait_for(f"count_over_time({m.DEVICE_UP}[5m]) >= 8", timeout=60)
            yield SimpleNamespace(prom=prom, started=started)
    finally:
        stop(agent)


def panel_results(failing_host, title: str) -> list[list]:
    dash = grafana.dashboards()["dashboards/nitrometer-device.json"]
    panel = next(p for p in grafana.data_panels(dash) if p["title"] == title)
    out = []
    for query in panel["targets"]:
        series, expr = run_query(failing_host, dash, query, panel.get("maxDataPoints") or 100)
        check_shape(f"{title}/{query['refId']}", query, series, expr, panel["type"])
        out.append(series)
    return out


def last(series: dict) -> float:
    return float(series["values"][-1][1])


def test_read_errors_by_reason_name_the_failing_device(failing_host):
    [errors] = panel_results(failing_host, "Read errors by reason")
    assert {s["metric"]["device"] for s in errors} == {FAILING}
    assert all(s["metric"]["reason"] for s in errors)
    # Retries back off (1, 2, 4 ... s), so the rate is above zero at the failures, not at
    # every point of the range.
    assert max(float(v[1]) for s in errors for v in s["values"]) > 0


def test_device_up_drops_for_the_failing_device_only(failing_host):
    [up] = panel_results(failing_host, "Device up")
    now = {s["metric"]["device"]: last(s) for s in up}
    assert now == {"nvme1n1": 1.0, FAILING: 0.0}
