"""Instance identity: IMDSv2 against a real HTTP server on 127.0.0.1, then DMI, then config."""

from __future__ import annotations

import logging
import platform

import pytest

from devkit.imds import FakeImds
from nitrometer import identity
from nitrometer.errors import ConfigError
from nitrometer.identity import (
    InstanceIdentity,
    as_labels,
    from_dmi,
    instance_identity,
    region_of_az,
)
from tests.sources_device.conftest import SYSFS_FIXTURES

DOCUMENT = {
    "accountId": "123456789012", "architecture": "arm64", "availabilityZone": "eu-west-1b",
    "imageId": "ami-0abcdef1234567890", "instanceId": "i-0aa11bb22cc33dd44",
    "instanceType": "im4gn.2xlarge", "pendingTime": "2026-01-01T00:00:00Z",
    "privateIp": "10.0.0.5", "region": "eu-west-1", "version": "2017-09-30",
}
TOKEN = "AQAEAtokenvalue=="
DMI_NITRO = str(SYSFS_FIXTURES / "dmi-nitro" / "devices/virtual/dmi/id")
DMI_QEMU = str(SYSFS_FIXTURES / "dmi-qemu" / "devices/virtual/dmi/id")


@pytest.fixture
def imds():
    fake = FakeImds(DOCUMENT, TOKEN)
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def fresh_warning():
    identity._warned_off_ec2 = False
    yield


def test_imdsv2_token_then_identity_document(imds):
    ident = instance_identity(endpoint=imds.url, timeout=2.0, dmi_root=DMI_QEMU)
    assert ident == InstanceIdentity(
        instance_id="i-0aa11bb22cc33dd44", instance_type="im4gn.2xlarge", family="im4gn",
        size="2xlarge", arch="arm64", region="eu-west-1", az="eu-west-1b", source="imds")
    (put_method, put_path, put_headers), (get_method, get_path, get_headers) = imds.seen
    assert (put_method, put_path) == ("PUT", "/latest/api/token")
    assert int(put_headers["X-aws-ec2-metadata-token-ttl-seconds"]) > 0
    assert (get_method, get_path) == ("GET", "/latest/dynamic/instance-identity/document")
    assert get_headers["X-aws-ec2-metadata-token"] == TOKEN
    assert as_labels(ident)["instance_type"] == "im4gn.2xlarge"
    assert "source" not in as_labels(ident)


def test_imds_401_falls_back_to_dmi(imds, caplog):
    imds.mode = "reject"
    with caplog.at_level(logging.INFO, logger="nitrometer.identity"):
        ident = instance_identity(endpoint=imds.url, timeout=2.0, dmi_root=DMI_NITRO)
    assert (ident.instance_id, ident.instance_type, ident.family, ident.size, ident.source) == (
        "i-0123456789abcdef0", "i3en.xlarge", "i3en", "xlarge", "dmi")
    assert ident.arch == identity.normalize_arch(platform.machine())
    assert (ident.region, ident.az) == ("", "")  # DMI does not know where the instance is
    assert [m for m, _, _ in imds.seen] == ["PUT", "GET"]
    assert "401" in caplog.text and "identity from DMI" in caplog.text


def test_imds_timeout_off_ec2_says_not_on_ec2_once(imds, caplog):
    imds.mode = "hang"
    with caplog.at_level(logging.WARNING, logger="nitrometer.identity"):
        first = instance_identity(endpoint=imds.url, timeout=0.2, dmi_root=DMI_QEMU)
        second = instance_identity(endpoint=imds.url, timeout=0.2, dmi_root=DMI_QEMU)
    assert first == second
    assert (first.source, first.instance_id, first.instance_type) == ("none", "", "")
    assert first.arch in ("x86_64", "arm64") or first.arch == platform.machine().lower()
    warnings = [r for r in caplog.records if "not on EC2" in r.getMessage()]
    assert len(warnings) == 1
    assert "timed out" in warnings[0].getMessage().lower()
    assert [m for m, _, _ in imds.seen] == ["PUT", "PUT"]  # no retries behind our back


def test_config_overrides_fill_in_off_ec2_and_win_over_dmi(tmp_path):
    closed = "http://127.0.0.1:9"  # nothing listens on the discard port
    ident = instance_identity(endpoint=closed, timeout=0.5, dmi_root=DMI_QEMU,
                              overrides={"instance_type": "c7g.4xlarge", "region": "us-east-2",
                                         "az": "us-east-2c"})
    assert (ident.instance_type, ident.family, ident.size, ident.region, ident.az,
            ident.source) == ("c7g.4xlarge", "c7g", "4xlarge", "us-east-2", "us-east-2c",
                              "config")
    on_dmi = instance_identity(use_imds=False, dmi_root=DMI_NITRO,
                               overrides={"region": "ap-south-1"})
    assert (on_dmi.instance_type, on_dmi.region, on_dmi.source) == (
        "i3en.xlarge", "ap-south-1", "dmi")
    with pytest.raises(ConfigError, match="unknown instance identity setting"):
        instance_identity(use_imds=False, dmi_root=DMI_QEMU, overrides={"zone": "x"})


def test_dmi_fixtures():
    metal = from_dmi(str(SYSFS_FIXTURES / "dmi-metal" / "devices/virtual/dmi/id"))
    assert (metal.instance_id, metal.instance_type) == ("i-0fedcba9876543210", "i3.metal")
    assert from_dmi(DMI_QEMU) is None
    assert from_dmi("/nonexistent/dmi") is None


def test_region_from_az():
    assert region_of_az("us-east-1a") == "us-east-1"
    assert region_of_az("us-west-2-lax-1a") == "us-west-2"
    assert region_of_az("") == ""


def test_metadata_disabled_by_the_aws_switch_asks_no_network(monkeypatch, tmp_path):
    import nitrometer.identity as identity

    def refuse(*args, **kwargs):
        raise AssertionError("the metadata service was asked")

    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(identity, "from_imds", refuse)
    ident = identity.instance_identity(dmi_root=str(tmp_path / "no-dmi"))
    assert ident.instance_id == "" and ident.source == "none"


@pytest.mark.parametrize("mode, said", [
    ("forbidden", "HTTP 403 for the IMDSv2 token (is IMDS turned off?)"),
    ("notjson", "the instance identity document is not JSON"),
])
def test_imds_answers_that_are_not_an_identity_say_why_in_one_line(imds, caplog, mode, said):
    imds.mode = mode
    with caplog.at_level(logging.WARNING, logger="nitrometer.identity"):
        ident = instance_identity(endpoint=imds.url, timeout=2.0, dmi_root=DMI_QEMU)
    assert ident.source == "none"
    [warning] = [r.getMessage() for r in caplog.records if "not on EC2" in r.getMessage()]
    assert f"no instance metadata: {said};" in warning
    # No GET without a token, and never the IMDSv1 fallback.
    assert [m for m, _, _ in imds.seen] == (["PUT"] if mode == "forbidden" else ["PUT", "GET"])


def test_the_sdk_endpoint_variable_points_the_agent_elsewhere(imds, monkeypatch):
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url + "/")
    ident = instance_identity(timeout=2.0, dmi_root=DMI_QEMU)
    assert (ident.instance_id, ident.source) == ("i-0aa11bb22cc33dd44", "imds")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "https://169.254.169.254")
    assert instance_identity(timeout=0.5, dmi_root=DMI_QEMU).source == "none"


def test_the_metadata_query_loads_no_http_client_library():
    import subprocess
    import sys

    code = ("import sys\n"
            "from nitrometer.identity import instance_identity\n"
            "instance_identity(endpoint='http://127.0.0.1:9', timeout=0.5,"
            " dmi_root='/nonexistent')\n"
            "heavy = ('ssl', 'email', 'http.client', 'urllib.request', 'urllib3', 'requests',"
            " 'ec2_metadata', 'hashlib')\n"
            "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
