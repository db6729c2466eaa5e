"""Each way a device can be unusable is one line on stderr and exit status 2."""

from __future__ import annotations

import struct

import pytest

from devkit.fakedev import MODEL_EBS, identify_bytes
from tests.cli.fixtures import EBS_BASE

EBS_ID = identify_bytes("vol0123456789abcdef0", MODEL_EBS, bdev="sdf")


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["snapshot"], ["diagnose", "--duration", "2s"]])
def test_missing_device(fake, tmp_path, command):
    proc = fake.nitrometer(*command, f"{tmp_path}/nvme9n1")
    assert one_line_error(proc) == (f"nitrometer: unknown device '{tmp_path}/nvme9n1': "
                                    f"{tmp_path}/nvme9n1 does not exist")


def test_path_that_is_not_nvme(fake):
    line = one_line_error(fake.nitrometer("snapshot", "/dev/null"))
    assert line == ("nitrometer: '/dev/null' is not an NVMe device name "
                    "(expected nvme1n1 or /dev/nvme1n1)")


def test_nvme_node_that_refuses_the_admin_ioctl(fake):
    fake.add("/dev/nvme4n1", identify=EBS_ID, page=EBS_BASE)
    fake.fail("/dev/nvme4n1", "errno=ENOTTY")
    line = one_line_error(fake.nitrometer("snapshot", "/dev/nvme4n1"))
    assert line.startswith("nitrometer: /dev/nvme4n1: not an NVMe device")


def test_no_devices_found(fake, tmp_path):
    line = one_line_error(fake.nitrometer("snapshot", "--path.sysfs", str(tmp_path)))
    assert line == f"nitrometer: no EC2 NVMe devices found (looked in {tmp_path}/class/nvme)"


def test_nvme_device_that_is_not_amazons(fake):
    fake.add("/dev/nvme5n1", identify=identify_bytes("S5GX", "Samsung SSD 980", vid=0x144D))
    line = one_line_error(fake.nitrometer("snapshot", "/dev/nvme5n1"))
    assert line.startswith("nitrometer: /dev/nvme5n1: not an EC2 NVMe device")


def test_no_permission(fake):
    fake.add("/dev/nvme1n1", identify=EBS_ID, page=EBS_BASE)
    fake.fail("/dev/nvme1n1", "errno=EACCES")
    line = one_line_error(fake.nitrometer("snapshot", "/dev/nvme1n1"))
    assert line == ("nitrometer: /dev/nvme1n1: permission denied: needs root or "
                    "CAP_SYS_ADMIN to read NVMe log pages")


@pytest.mark.parametrize("command", [["snapshot", "/dev/nvme1n1"],
                                     ["snapshot", "/dev/nvme1n1", "1", "1"],
                                     ["diagnose", "/dev/nvme1n1", "--duration", "2s"]])
def test_a_newer_page_version_is_read_with_one_warning(fake, command):
    page = bytearray(EBS_BASE)
    struct.pack_into("<I", page, 4, 7)
    fake.add("/dev/nvme1n1", identify=EBS_ID, page=bytes(page))
    done = fake.nitrometer(*command)
    assert done.returncode in (0, 1), done.stderr  # diagnose: 1 = a problem found
    warnings = done.stderr.strip().splitlines()
    if command[-1] == "1":  # rows with % of limits: the unknown volume limit is said once too
        assert sum("provisioned IOPS and throughput unknown" in w for w in warnings) == 1
        warnings = [w for w in warnings if "provisioned IOPS" not in w]
    assert len(warnings) == 1 and "statistics page version 7 is newer" in warnings[0]
    assert "nvme1n1" in done.stdout


def test_device_io_error(fake):
    fake.add("/dev/nvme1n1", identify=EBS_ID, page=EBS_BASE)
    fake.fail("/dev/nvme1n1", "errno=EIO")
    line = one_line_error(fake.nitrometer("snapshot", "/dev/nvme1n1"))
    assert line == "nitrometer: /dev/nvme1n1: I/O error during Identify Controller"


@pytest.mark.parametrize("args, message", [
    (["snapshot", "0"], "INTERVAL 0: must be more than zero"),
    (["snapshot", "0.5"], "INTERVAL 0.5: at least 1s (the device refreshes its statistics"),
    (["record", "--out", "x.nmr", "--interval", "0.2"], "--interval: at least 1s"),
    (["snapshot", "1", "2", "3"], "1 2 3: at most two numbers, INTERVAL [COUNT]"),
    (["snapshot", "1", "1.5"], "COUNT 1.5: must be a whole number of at least 1"),
    (["diagnose", "--duration", "soon"], "--duration soon: expected a duration like 1s or "
                                         "5m, got 'soon'"),
    (["snapshot", "--source", "ioctl", "--speed", "0"],
     "--speed applies to simulate and replay sources only"),
])
def test_usage_errors(fake, args, message):
    proc = fake.nitrometer(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
