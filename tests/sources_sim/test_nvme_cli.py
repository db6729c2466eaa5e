"""The nvme-cli source against a stand-in `nvme` that prints what real nvme-cli printed."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from nitrometer import native
from nitrometer.collectors.base import KIND_EBS, KIND_INSTANCE_STORE, Device
from nitrometer.collectors.nvme_cli import NvmeCliSource
from nitrometer.collectors.nvme_cli_format import StatsFormatError, parse_size, parse_stats
from nitrometer.errors import DeviceError
from nitrometer.logpage import COUNTERS
from tests.native import captures

DEVICES = {
    KIND_INSTANCE_STORE: Device("nvme1n1", "/dev/nvme1n1", KIND_INSTANCE_STORE,
                                "AWS1234567890ABCDEF", "Amazon EC2 NVMe Instance Storage"),
    KIND_EBS: Device("nvme2n1", "/dev/nvme2n1", KIND_EBS, "vol-0123456789abcdef0",
                     "Amazon Elastic Block Store", bdev="sdf"),
}
# What `nvme amzn stats -d -o json` prints, by release: 2.16 JSON, 3.0 text (it ignores -o
# json), and JSON after the banner line `--interval` prints first.
DETAILED_OUTPUTS = ["2.16-json-details", "3.0rc1-json-details", "3.0rc1-text-details",
                    "banner+3.0rc1-json-details"]


def detailed_output(tmp_path, case: str, name: str) -> pathlib.Path:
    if not name.startswith("banner+"):
        return captures.path(case, name)
    out = tmp_path / "banner.out"
    out.write_text(captures.BANNER + captures.output(case, name.split("+", 1)[1]))
    return out


def fake_nvme(tmp_path, monkeypatch, script: str) -> pathlib.Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "nvme"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return exe


def assert_same_page(rebuilt: bytes, original: bytes) -> None:
    """The same decoded values (nvme-cli does not print unused size slots or padding)."""
    assert native.decode(rebuilt).to_dict() == native.decode(original).to_dict()


@pytest.mark.parametrize("name", DETAILED_OUTPUTS)
@pytest.mark.parametrize("case", captures.CASES)
def test_every_nvme_cli_output_rebuilds_the_page(tmp_path, monkeypatch, case, name):
    log = tmp_path / "argv"
    fake_nvme(tmp_path, monkeypatch,
              f'echo "$@" > {log}\ncat {detailed_output(tmp_path, case, name)}\n')
    device = DEVICES[captures.kind(case)]
    raw, _ = NvmeCliSource(device).read()
    assert_same_page(raw, captures.page(case))
    assert log.read_text().split() == ["amzn", "stats", "-d", "-o", "json", device.path]


@pytest.mark.parametrize("case", captures.CASES)
def test_text_without_details_rebuilds_the_base_page(case):
    stats = parse_stats(captures.output(case, "3.0rc1-text"))
    assert stats.kind == captures.kind(case)
    rebuilt, original = (native.decode(raw).to_dict()
                         for raw in (stats.page(), captures.page(case)))
    base = ["read_io_latency_histogram", "write_io_latency_histogram", *COUNTERS]
    assert {k: rebuilt[k] for k in base} == {k: original[k] for k in base}


def test_old_key_spelling_lands_in_the_instance_counters():
    case = captures.TYPICAL[KIND_INSTANCE_STORE]
    text = captures.output(case, "2.16-json-details")
    assert "ec2_instance_ebs_performance_exceeded_iops" in text
    stats = parse_stats(text)
    page = native.decode(captures.page(case))
    assert stats.counters["ec2_instance_performance_exceeded_iops"] == \
        page["ec2_instance_performance_exceeded_iops"] > 0


@pytest.mark.parametrize("text,value", [("0", 0), ("512", 512), ("4K", 4096),
                                        ("1M", 1 << 20), ("max", 0xFFFFFFFF), ("3000", 3000)])
def test_io_size_strings(text, value):
    assert parse_size(text) == value


def test_garbage_is_a_format_error():
    with pytest.raises(StatsFormatError):
        parse_stats("hello\nworld\n")
    with pytest.raises(StatsFormatError):
        parse_stats('{"total_read_ops": 1}')


def test_nvme_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceError, match="not installed.*2.12 or newer"):
        NvmeCliSource(DEVICES[KIND_EBS]).read()


def test_nvme_too_old_names_the_version_needed(tmp_path, monkeypatch):
    fake_nvme(tmp_path, monkeypatch,
              'if [ "$1" = version ]; then echo "nvme version 2.3 (git 2.3)"; exit 0; fi\n'
              "echo \"ERROR: Invalid sub-command 'stats' for plugin amzn\" >&2\nexit 1\n")
    with pytest.raises(DeviceError, match=r"nvme-cli 2\.3 has no `amzn stats`.*2\.12 or newer"):
        NvmeCliSource(DEVICES[KIND_EBS]).read()


def test_not_an_ec2_device(tmp_path, monkeypatch):
    fake_nvme(tmp_path, monkeypatch, 'echo "Not an EC2 device"\nexit 1\n')
    with pytest.raises(DeviceError, match="not an EC2 device"):
        NvmeCliSource(DEVICES[KIND_EBS]).read()


def test_a_hung_nvme_times_out(tmp_path, monkeypatch):
    fake_nvme(tmp_path, monkeypatch, "exec sleep 5\n")
    with pytest.raises(DeviceError, match="did not answer within 0.3 s"):
        NvmeCliSource(DEVICES[KIND_EBS], timeout=0.3).read()
