"""The nvme-cli source against a stand-in `nvme` that prints recorded outputs."""

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

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "nvme-cli"
DEVICES = {
    KIND_INSTANCE_STORE: Device("nvme1n1", "/dev/nvme1n1", KIND_INSTANCE_STORE,
                                "AWS1234567890ABCDEF", "Amazon EC2 NVMe Instance Storage"),
    KIND_EBS: Device("nvme2n1", "/dev/nvme2n1", KIND_EBS, "vol-0123456789abcdef0",
                     "Amazon Elastic Block Store", bdev="sdf"),
}


def fake_nvme(tmp_path, monkeypatch, script: str) -> pathlib.Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "nvme"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return exe


def assert_same_page(rebuilt: bytes, original: bytes) -> None:
    a, b = native.decode(rebuilt), native.decode(original)
    assert a.to_dict() == b.to_dict()
    assert len(rebuilt) == len(original)


@pytest.mark.parametrize("kind", [KIND_INSTANCE_STORE, KIND_EBS])
@pytest.mark.parametrize("variant", ["2.12.json", "2.17.json", "banner.txt", "3.0.txt"])
def test_every_recorded_output_rebuilds_the_page(tmp_path, monkeypatch, kind, variant):
    fixture = FIXTURES / f"{kind}-{variant}"
    log = tmp_path / "argv"
    fake_nvme(tmp_path, monkeypatch, f'echo "$@" > {log}\ncat {fixture}\n')
    raw, _ = NvmeCliSource(DEVICES[kind]).read()
    assert_same_page(raw, (FIXTURES / f"{kind}.bin").read_bytes())
    assert log.read_text().split() == ["amzn", "stats", "-d", "-o", "json",
                                      DEVICES[kind].path]


def test_old_key_spelling_lands_in_the_instance_counters():
    stats = parse_stats((FIXTURES / "instance_store-2.12.json").read_text())
    page = native.decode((FIXTURES / "instance_store.bin").read_bytes())
    assert stats.counters["ec2_instance_performance_exceeded_iops"] == \
        page["ec2_instance_performance_exceeded_iops"] > 0


def test_text_says_which_kind_it_is():
    assert parse_stats((FIXTURES / "ebs-3.0.txt").read_text()).kind == "ebs"
    assert parse_stats((FIXTURES / "instance_store-3.0.txt").read_text()).kind == \
        "instance_store"


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
