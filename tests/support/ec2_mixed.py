"""The fake devices behind the sysfs fixture tests/sysfs/ec2-mixed: the EBS root volume, an
instance-store disk and an EBS data volume, with the serials and attach names the fixture's
sysfs gives them."""

from __future__ import annotations

from devkit.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, identify_bytes
from devkit.fakedev.pages import ebs_page, instance_store_page

ROOT_EBS, LOCAL, DATA_EBS = "nvme0n1", "nvme1n1", "nvme2n1"
IDENTIFY = {
    ROOT_EBS: ("vol0a1b2c3d4e5f60718", MODEL_EBS, "/dev/xvda"),
    LOCAL: ("AWS1A2B3C4D5E6F7G8H9", MODEL_INSTANCE_STORE, ""),
    DATA_EBS: ("vol0fedcba9876543210", MODEL_EBS, "sdf"),
}


def plug_ec2_mixed(fake, dev_root, names=(ROOT_EBS, LOCAL, DATA_EBS), pages=None) -> None:
    """Adds the named devices under dev_root; pages overrides a device's page."""
    for name in names:
        serial, model, bdev = IDENTIFY[name]
        page = (pages or {}).get(name) or (
            instance_store_page() if model == MODEL_INSTANCE_STORE else ebs_page())
        fake.add(f"{dev_root}/{name}", page=page, identify=identify_bytes(serial, model, bdev=bdev))
