"""`nitrometer list` on a fixture sysfs tree whose device nodes are fake NVMe devices."""

from __future__ import annotations

import json
import sys

from devkit.fakedev.pages import ebs_page
from tests.support.ec2_mixed import DATA_EBS, plug_ec2_mixed


def test_list_json_reports_kind_identity_and_readability(fake, sysfs, dev_root):
    plug_ec2_mixed(fake, dev_root, pages={DATA_EBS: ebs_page(read_ops=5, write_ops=7)})
    fake.fail(f"{dev_root}/nvme2n1", "errno=EACCES")  # Identify too: no bdev for this one
    proc = fake.nitrometer("list", "--json", "--path.sysfs", str(sysfs),
                           "--path.dev", str(dev_root))
    assert proc.returncode == 0, proc.stderr
    rows = {r["device"]: r for r in json.loads(proc.stdout)}
    assert sorted(rows) == ["nvme0n1", "nvme1n1", "nvme2n1", "nvme3n1"]

    root = rows["nvme0n1"]
    assert (root["kind"], root["serial"], root["bdev"], root["readable"], root["error"]) == (
        "ebs", "vol-0a1b2c3d4e5f60718", "/dev/xvda", True, None)
    assert root["path"] == f"{dev_root}/nvme0n1"

    local = rows["nvme1n1"]
    assert (local["kind"], local["serial"], local["bdev"], local["readable"]) == (
        "instance_store", "AWS1A2B3C4D5E6F7G8H9", "", True)

    denied = rows["nvme2n1"]
    assert (denied["readable"], denied["reason"], denied["bdev"]) == (False, "permission", "")
    assert denied["error"] == (f"{dev_root}/nvme2n1: permission denied: needs root or "
                               "CAP_SYS_ADMIN to read NVMe log pages")

    other = rows["nvme3n1"]
    assert (other["kind"], other["model"], other["readable"], other["reason"]) == (
        "other", "Samsung SSD 980 PRO 1TB", False, "not_ec2")
    # The non-Amazon device was never sent an admin command (it has no fake either).
    assert [c["opcode"] for c in fake.commands(f"{dev_root}/nvme1n1")] == [2, 2]
    assert [c["opcode"] for c in fake.commands(f"{dev_root}/nvme0n1")] == [6, 2]


def test_list_table_says_why_a_page_cannot_be_read(fake, sysfs, dev_root):
    plug_ec2_mixed(fake, dev_root, pages={DATA_EBS: ebs_page(read_ops=5, write_ops=7)})
    fake.fail(f"{dev_root}/nvme1n1", "errno=EIO")
    proc = fake.nitrometer("list", "--path.sysfs", str(sysfs), "--path.dev", str(dev_root))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["DEVICE", "KIND", "VOLUME/SERIAL", "BDEV", "MODEL", "READABLE"]
    assert lines[1].split() == ["nvme0n1", "ebs", "vol-0a1b2c3d4e5f60718", "/dev/xvda",
                                "Amazon", "Elastic", "Block", "Store", "yes"]
    assert lines[2].split()[:2] == ["nvme1n1", "instance_store"] and lines[2].endswith("no")
    assert f"nvme1n1: {dev_root}/nvme1n1: I/O error during Get Log Page 0xD0" in lines
    assert "nvme3n1: not an Amazon NVMe device: skipped" in lines


def test_list_without_devices_says_so(fake, tmp_path):
    proc = fake.run([sys.executable, "-m", "nitrometer", "list", "--path.sysfs",
                     str(tmp_path / "empty")])
    assert proc.returncode == 0
    assert proc.stdout == f"no NVMe devices under {tmp_path / 'empty' / 'class' / 'nvme'}\n"
    proc = fake.nitrometer("list", "--json", "--path.sysfs", str(tmp_path / "empty"))
    assert json.loads(proc.stdout) == []
