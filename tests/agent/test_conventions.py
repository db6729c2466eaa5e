"""What a Prometheus user expects of an exporter: its flags, logs and labels, the headroom
gauges, and a series budget an instance-store device stays under."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest
from botocore.stub import Stubber

from nitrometer import metrics as m
from nitrometer.agent.config import AgentConfig
from nitrometer.agent.instance import build_instance
from nitrometer.collectors.volumes import VolumeDirectory
from nitrometer.ec2 import VolumeLimits
from tests.agent.conftest import promtool_check
from tests.support.processes import stop
from tests.support.prometheus import free_port


def start_agent(tmp_path, *flags):
    port = free_port()
    log = open(tmp_path / "agent.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", f"--web.listen-address=127.0.0.1:{port}",
         "--poll.interval=1s", *flags],
        stdout=log, stderr=subprocess.STDOUT)
    return proc, port, tmp_path / "agent.log"


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def wait_for(check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_telemetry_path_json_logs_and_no_exporter_metrics(tmp_path):
    proc, port, log = start_agent(
        tmp_path, "--source=simulate:i3en.xlarge:steady:gp3", "--web.telemetry-path=/stats",
        "--log.format=json", "--web.disable-exporter-metrics")
    try:
        text = wait_for(lambda: get(port, "/stats")[0] == 200 and get(port, "/stats")[1],
                        "metrics at /stats")
        assert get(port, "/metrics")[0] == 404
        assert m.READ_OPS in text and "process_cpu_seconds_total" not in text
        assert "python_info" not in text
    finally:
        stop(proc)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert any("serving metrics at" in r["msg"] and "/stats" in r["msg"] for r in records)


def test_logfmt_no_devices_and_disabled_defaults(tmp_path):
    sysfs = tmp_path / "sys"
    (sysfs / "class" / "nvme").mkdir(parents=True)
    proc, port, log = start_agent(tmp_path, f"--path.sysfs={sysfs}",
                                  f"--path.dev={tmp_path}", "--collector.disable-defaults",
                                  "--collector.peaks")
    try:
        text = wait_for(lambda: "nitrometer_devices" in get(port, "/metrics")[1]
                        and get(port, "/metrics")[1], "the first scrape")
    finally:
        stop(proc)
    assert 'nitrometer_devices{kind="ebs"} 0.0' in text
    assert 'nitrometer_devices{kind="instance_store"} 0.0' in text
    assert m.HOST_CPU_BUSY not in text and m.INSTANCE_INFO not in text  # defaults off
    lines = log.read_text().splitlines()
    assert all(line.startswith("ts=") and " level=" in line for line in lines), lines
    assert sum("no Amazon NVMe devices found" in line for line in lines) == 1


def test_help_shows_value_names_and_defaults():
    done = subprocess.run([sys.executable, "-m", "nitrometer", "run", "--help"],
                          capture_output=True, text=True, timeout=60)
    help_text = " ".join(done.stdout.split())
    assert "--poll.interval DURATION" in help_text and "(default: 1s)" in help_text
    assert "--exceeded.min-share SHARE" in help_text and "(default: 1%)" in help_text
    assert "--collector.ebs_api, --no-collector.ebs_api" in help_text
    assert "VALUE" not in help_text


def test_no_region_is_invented_off_ec2():
    config = AgentConfig(instance_type="m5.large")
    ctx = build_instance(config)
    assert ctx.region == "" and ctx.price is None
    assert build_instance(AgentConfig(instance_type="m5.large", region="us-east-1")).price


def test_instance_limits_come_from_the_published_table():
    limits = build_instance(AgentConfig(instance_type="i3en.xlarge", region="us-east-1")).limits
    assert limits[("instance_store", "read")] == {"iops": 85000.0}
    assert limits[("instance_store", "write")] == {"iops": 65000.0}
    # The guide gives no instance-store throughput: none is exported rather than a guess.
    assert ("instance_store", "total") not in limits
    assert limits[("ebs", "total")] == {"iops": 6000.0, "throughput": 144.2e6}


def test_headroom_gauges_and_the_series_budget(rig):
    from nitrometer.collectors.base import FastClock, SourceSpec
    from nitrometer.sim.devices import simulated_sources

    clock = FastClock(0)
    sources = simulated_sources(SourceSpec("simulate", "i3en.xlarge", "steady", ("gp3",)),
                                clock)
    r = rig(sources, clock=clock)
    r.state.volumes = VolumeDirectory()
    for source in sources:
        if source.volume_limits is not None:
            r.state.volumes.add(source.device.serial, source.volume_limits)
    r.state.instance = build_instance(AgentConfig(instance_type="i3en.xlarge",
                                                  region="us-east-1"))
    r.sampler.run(5)
    text = r.text()
    assert promtool_check(text) == ""
    ebs = {"device": "nvme2n1", "serial": sources[1].device.serial, "kind": "ebs"}
    assert r.value(m.VOLUME_IOPS_LIMIT, **ebs) == 3000
    assert r.value(m.VOLUME_THROUGHPUT_LIMIT, **ebs) == pytest.approx(131.072e6)
    info = [s for s in r.samples() if s.name == m.DEVICE_INFO and s.labels["kind"] == "ebs"]
    assert info[0].labels["volume_id"] == ebs["serial"]
    assert info[0].labels["volume_type"] == "gp3"
    assert r.value(m.INSTANCE_IOPS_LIMIT, instance_type="i3en.xlarge", kind="instance_store",
                   op="read") == 85000
    assert r.value(m.PEAK_LATENCY_P99, op="read", device="nvme1n1",
                   serial=sources[0].device.serial, kind="instance_store") > 0
    per_device = Counter(s.labels.get("device") for s in r.samples())
    assert per_device["nvme1n1"] < 120  # instance store, IO-size bands on
    r.state.buckets = "device"
    r.state.version += 1
    assert Counter(s.labels.get("device") for s in r.samples())["nvme1n1"] > 300


def test_describe_volumes_through_botocore_stubbed():
    import botocore.session

    client = botocore.session.get_session().create_client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    stub.add_response("describe_volumes", {"Volumes": [
        {"VolumeId": "vol-0aaaaaaaaaaaaaaa1", "VolumeType": "gp3", "Iops": 6000,
         "Throughput": 250},
        {"VolumeId": "vol-0aaaaaaaaaaaaaaa2", "VolumeType": "io2", "Iops": 32000}]},
        {"VolumeIds": ["vol-0aaaaaaaaaaaaaaa1", "vol-0aaaaaaaaaaaaaaa2"]})
    configured = {"vol-0aaaaaaaaaaaaaaa3": VolumeLimits("gp2", 300, None, "config")}
    volumes = VolumeDirectory(configured, client=client, use_api=True)
    with stub:
        volumes.lookup(["vol-0aaaaaaaaaaaaaaa1", "vol-0aaaaaaaaaaaaaaa2",
                        "vol-0aaaaaaaaaaaaaaa3"])
        volumes.lookup(["vol-0aaaaaaaaaaaaaaa1"])  # known now: no second call
    assert volumes.get("vol-0aaaaaaaaaaaaaaa1") == VolumeLimits("gp3", 6000, 250 * 2**20,
                                                                "ec2_api")
    assert volumes.get("vol-0aaaaaaaaaaaaaaa2").iops == 32000
    assert volumes.get("vol-0aaaaaaaaaaaaaaa3").source == "config"


def test_describe_volumes_denied_is_one_log_line_and_no_retry(caplog):
    import botocore.session

    client = botocore.session.get_session().create_client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    stub.add_client_error("describe_volumes", service_error_code="UnauthorizedOperation",
                          service_message="You are not authorized to perform this operation.")
    volumes = VolumeDirectory(client=client, use_api=True)
    with stub, caplog.at_level("WARNING", logger="nitrometer.volumes"):
        volumes.lookup(["vol-0bbbbbbbbbbbbbbb1"])
        volumes.lookup(["vol-0bbbbbbbbbbbbbbb2"])  # the API is not asked again
    assert [r.getMessage() for r in caplog.records] == [
        "collector.ebs_api: DescribeVolumes refused: UnauthorizedOperation: You are not "
        "authorized to perform this operation.; volume limits come from the config file only"]
    assert volumes.get("vol-0bbbbbbbbbbbbbbb1") is None
