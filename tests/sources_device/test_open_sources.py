"""open_sources for every --source kind: devices found or named, and unknown names."""

from __future__ import annotations

import pytest

from devkit.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, identify_bytes
from devkit.fakedev.pages import ebs_page, instance_store_page
from nitrometer import native
from nitrometer.collectors.base import FastClock, SourceSpec, parse_source
from nitrometer.errors import ConfigError, DeviceError
from nitrometer.sampling.sources import open_sources


def test_ioctl_pages_recorded_then_replayed_are_the_same_bytes(fake, tmp_path):
    ebs, local = ebs_page(), instance_store_page()
    fake.add("/dev/nvme1n1", page=ebs,
             identify=identify_bytes("vol0123456789abcdef0", MODEL_EBS, bdev="sdg"))
    fake.add("/dev/nvme2n1", page=local,
             identify=identify_bytes("AWS2F1E0D9C8B7A65432", MODEL_INSTANCE_STORE))
    out = tmp_path / "rec.nmr"
    proc = fake.nitrometer("record", "/dev/nvme1n1", "nvme2n1", "--out", str(out),
                           "--count", "2")
    assert proc.returncode == 0, proc.stderr

    [replayed] = open_sources(parse_source(f"replay:{out}"), ["nvme2n1"], clock=FastClock(0))
    try:
        page, _ = replayed.read()
        assert page == local
        assert (replayed.device.kind, replayed.device.serial) == (
            "instance_store", "AWS2F1E0D9C8B7A65432")
    finally:
        replayed.close()
    [by_volume] = open_sources(parse_source(f"replay:{out}"), ["vol-0123456789abcdef0"],
                               clock=FastClock(0))
    try:
        page, _ = by_volume.read()
        assert native.decode(page).counters == native.decode(ebs).counters
        assert by_volume.device.bdev == "sdg"
    finally:
        by_volume.close()
    with pytest.raises(DeviceError, match=r"unknown device nvme7n1 in recording .*rec\.nmr "
                                          r"\(it has: nvme1n1, nvme2n1\)"):
        open_sources(parse_source(f"replay:{out}"), ["nvme7n1"], clock=FastClock(0))


def test_simulated_devices_found_and_named(tmp_path):
    spec = parse_source("simulate:i3en.xlarge:steady:gp3")
    everything = open_sources(spec, clock=FastClock(0))
    names = [s.device.name for s in everything]
    assert len(names) >= 2 and {s.device.kind for s in everything} == {"ebs", "instance_store"}
    [one] = open_sources(spec, [f"/dev/{names[-1]}"], clock=FastClock(0))
    page, _ = one.read()
    assert native.decode(page).kind == one.device.kind
    with pytest.raises(DeviceError, match="unknown device nvme99n1 in simulation"):
        open_sources(spec, ["nvme99n1"], clock=FastClock(0))


def test_ioctl_discovers_only_amazon_devices(fake, sysfs, dev_root):
    fake.add(f"{dev_root}/nvme1n1", page=instance_store_page(),
             identify=identify_bytes("AWS1A2B3C4D5E6F7G8H9", MODEL_INSTANCE_STORE))
    code = (
        "from nitrometer.collectors.base import SourceSpec\n"
        "from nitrometer.sampling.sources import open_sources\n"
        f"ss = open_sources(SourceSpec('ioctl'), sysfs_root={str(sysfs)!r}, "
        f"dev_root={str(dev_root)!r})\n"
        "print(' '.join(s.device.name for s in ss))\n"
        "print(len(ss[1].read()[0]))\n"
    )
    proc = fake.python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["nvme0n1 nvme1n1 nvme2n1", "8192"]


def test_bad_names_and_kinds_are_one_line():
    with pytest.raises(DeviceError, match="'sda' is not an NVMe device name"):
        open_sources(SourceSpec("nvme-cli"), ["sda"])
    with pytest.raises(ConfigError, match="unknown source kind"):
        open_sources(SourceSpec("carrier-pigeon"))
