"""Discovery on fixture sysfs trees: kinds, volume ids, namespaces, hot plug."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from devkit.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, identify_bytes
from nitrometer.collectors.base import KIND_EBS, KIND_INSTANCE_STORE, KIND_OTHER, Device
from nitrometer.collectors.discovery import (
    CONTROLLER_NSID,
    Discovery,
    device_from_identify,
    parse_identify,
    split_device_name,
    volume_id,
)
from nitrometer.errors import DeviceError
from nitrometer.sampling.sources import _select, discover_devices
from tests.sources_device.conftest import SYSFS_FIXTURES


def _write_controller(root, name, model, serial, namespaces=("n1",)):
    ctrl = root / "class" / "nvme" / name
    ctrl.mkdir(parents=True)
    (ctrl / "model").write_text(model.ljust(40) + "\n")
    (ctrl / "serial").write_text(serial.ljust(20) + "\n")
    (ctrl / "firmware_rev").write_text("1.0     \n")
    for ns in namespaces:
        (ctrl / f"{name}{ns}").mkdir()


def test_fixture_tree_finds_every_controller_with_its_kind(tmp_path):
    scan = Discovery(str(SYSFS_FIXTURES / "ec2-mixed"), str(tmp_path)).scan()
    by_name = {d.name: d for d in scan.devices}
    assert sorted(by_name) == ["nvme0n1", "nvme1n1", "nvme2n1", "nvme3n1"]  # not nvme-fabrics
    root = by_name["nvme0n1"]
    assert (root.kind, root.serial, root.model) == (
        KIND_EBS, "vol-0a1b2c3d4e5f60718", "Amazon Elastic Block Store")
    assert root.path == str(tmp_path / "nvme0n1")
    assert (root.controller, root.nsid, root.firmware) == ("nvme0", 1, "1.0")
    # No device node answers Identify here, so the attach-time name is left empty.
    assert root.bdev == ""
    local = by_name["nvme1n1"]
    assert (local.kind, local.serial) == (KIND_INSTANCE_STORE, "AWS1A2B3C4D5E6F7G8H9")
    other = by_name["nvme3n1"]
    assert (other.kind, other.serial, other.nsid) == (KIND_OTHER, "S5GXNF0R123456", 1)
    assert [d.name for d in scan.added] == [d.name for d in scan.devices]
    assert scan.removed == []


def test_discover_devices_skips_non_amazon_unless_asked(tmp_path):
    root = str(SYSFS_FIXTURES / "ec2-mixed")
    amazon = discover_devices(root, str(tmp_path))
    assert [d.controller for d in amazon] == ["nvme0", "nvme1", "nvme2"]
    everything = discover_devices(root, str(tmp_path), include_other=True)
    assert [d.kind for d in everything][-1] == KIND_OTHER


def test_missing_sysfs_is_no_devices_not_an_error(tmp_path):
    assert Discovery(str(tmp_path / "nowhere"), str(tmp_path)).scan().devices == []


def test_lowest_nsid_wins_using_the_nsid_file(sysfs, tmp_path):
    ctrl = sysfs / "class" / "nvme" / "nvme3"
    (ctrl / "nvme3n1" / "nsid").write_text("7\n")  # nvme3n2 now holds the lower nsid
    device = next(d for d in Discovery(str(sysfs), str(tmp_path)).scan().devices
                  if d.controller == "nvme3")
    assert (device.name, device.nsid) == ("nvme3n2", 2)


def test_controller_without_namespace_is_read_through_the_char_device(sysfs, tmp_path):
    _write_controller(sysfs, "nvme7", MODEL_INSTANCE_STORE, "AWS77777777777777777", ())
    device = next(d for d in Discovery(str(sysfs), str(tmp_path)).scan().devices
                  if d.controller == "nvme7")
    assert (device.name, device.path, device.nsid) == (
        "nvme7", str(tmp_path / "nvme7"), CONTROLLER_NSID)


def test_hot_plug_attach_detach_and_reattach_at_the_same_name(sysfs, tmp_path):
    discovery = Discovery(str(sysfs), str(tmp_path))
    first = discovery.scan()
    assert len(first.added) == 4

    again = discovery.scan()
    assert (again.added, again.removed) == ([], [])

    _write_controller(sysfs, "nvme4", MODEL_EBS, "vol0444444444444444a")
    attached = discovery.scan()
    assert [(d.name, d.serial) for d in attached.added] == [("nvme4n1", "vol-0444444444444444a")]
    assert attached.removed == []

    shutil.rmtree(sysfs / "class" / "nvme" / "nvme2")
    detached = discovery.scan()
    assert [d.serial for d in detached.removed] == ["vol-0fedcba9876543210"]
    assert detached.added == []
    assert "nvme2n1" not in [d.name for d in detached.devices]

    # Another volume attached at the freed name: a new device, not the old one continued.
    _write_controller(sysfs, "nvme2", MODEL_EBS, "vol0bbbbbbbbbbbbbbbb")
    shutil.rmtree(sysfs / "class" / "nvme" / "nvme4")
    swapped = discovery.scan()
    assert [(d.name, d.serial) for d in swapped.added] == [("nvme2n1", "vol-0bbbbbbbbbbbbbbbb")]
    assert [(d.name, d.serial) for d in swapped.removed] == [("nvme4n1", "vol-0444444444444444a")]


def test_volume_ids_and_names():
    assert volume_id("vol0123456789abcdef0") == "vol-0123456789abcdef0"
    assert volume_id("vol-0123456789abcdef0") == "vol-0123456789abcdef0"
    assert volume_id("AWS1234") == "AWS1234"
    assert split_device_name("/dev/nvme12n3") == ("nvme12", 3)
    assert split_device_name("nvme0") == ("nvme0", None)
    with pytest.raises(ValueError, match="not an NVMe device name"):
        split_device_name("/dev/sda")


def test_identify_fields_from_their_offsets():
    ident = parse_identify(identify_bytes("vol0abcdef0123456789", MODEL_EBS, firmware="2.5",
                                          bdev="/dev/xvdf"))
    assert (ident.vid, ident.serial, ident.model, ident.firmware, ident.bdev) == (
        0x1D0F, "vol0abcdef0123456789", MODEL_EBS, "2.5", "/dev/xvdf")
    assert ident.kind == KIND_EBS
    device = device_from_identify("/dev/nvme1", ident)
    assert (device.name, device.serial, device.nsid) == ("nvme1", "vol-0abcdef0123456789",
                                                         CONTROLLER_NSID)
    local = parse_identify(identify_bytes("AWS00000000000000001", MODEL_INSTANCE_STORE,
                                          bdev="ignored"))
    assert (local.kind, local.bdev) == (KIND_INSTANCE_STORE, "")  # vendor bytes mean nothing
    foreign = parse_identify(identify_bytes("S5GX", MODEL_EBS, vid=0x144D))
    assert foreign.kind == KIND_OTHER  # the model string alone does not make it Amazon's


class _Recorded:
    """A PageSource over fixed bytes, to check which of several sources are kept."""

    def __init__(self, name, serial):
        self.device = Device(name=name, path="", kind=KIND_EBS, serial=serial, model="m")
        self.closed = False

    def read(self):
        return b"", 0.0

    def close(self):
        self.closed = True


def test_select_named_devices_by_name_or_serial_and_reject_unknown():
    sources = [_Recorded("nvme1n1", "vol-1"), _Recorded("nvme2n1", "vol-2")]
    kept = _select(sources, ["/dev/nvme2n1"], "recording r.bin")
    assert kept == [sources[1]] and sources[0].closed and not sources[1].closed
    sources = [_Recorded("nvme1n1", "vol-1"), _Recorded("nvme2n1", "vol-2")]
    assert _select(sources, ["vol-1"], "x") == [sources[0]]
    with pytest.raises(DeviceError, match=r"unknown device nvme9n1 in recording r.bin "
                                          r"\(it has: nvme1n1, nvme2n1\)"):
        _select([_Recorded("nvme1n1", "a"), _Recorded("nvme2n1", "b")], ["nvme9n1"],
                "recording r.bin")


def test_multipath_path_resolves_to_the_subsystem_head(sysfs, tmp_path):
    _write_controller(sysfs, "nvme5", MODEL_EBS, "vol05555555555555555", ("c5n1",))
    subsys = sysfs / "class" / "nvme-subsystem" / "nvme-subsys6"
    (subsys / "nvme6n1").mkdir(parents=True)
    (subsys / "nvme5").symlink_to(sysfs / "class" / "nvme" / "nvme5")
    _write_controller(sysfs, "nvme8", MODEL_EBS, "vol08888888888888888", ("c8n1",))
    devices = {d.controller: d for d in Discovery(str(sysfs), str(tmp_path)).scan().devices}
    assert (devices["nvme5"].name, devices["nvme5"].nsid) == ("nvme6n1", 1)
    assert devices["nvme5"].path == str(tmp_path / "nvme6n1")
    assert devices["nvme8"].name == "nvme8n1"  # no subsystem listed: numbered as the controller


class Controllers:
    """Identify stand-in: a controller in `hung` blocks until released; one in `failing`
    raises; every call is counted by path."""

    def __init__(self):
        self.release = threading.Event()
        self.hung: set[str] = set()
        self.failing: set[str] = set()
        self.calls: dict[str, int] = {}

    def __call__(self, path):
        self.calls[path] = self.calls.get(path, 0) + 1
        if path.endswith(tuple(self.hung)):
            self.release.wait(30)
        if path.endswith(tuple(self.failing)):
            raise OSError(5, "Input/output error")
        return parse_identify(identify_bytes("vol0", MODEL_EBS, bdev=f"/dev/xvd-{path[-7:]}"))


def test_a_hung_identify_holds_back_no_other_controller(tmp_path, caplog):
    controllers = Controllers()
    controllers.hung.add("nvme0n1")
    discovery = Discovery(str(SYSFS_FIXTURES / "ec2-mixed"), str(tmp_path),
                          identify=controllers, identify_wait=0.2)
    scan = discovery.scan()
    by_name = {d.name: d for d in scan.devices}
    assert by_name["nvme0n1"].bdev == ""  # still asking: listed, without its name
    assert by_name["nvme2n1"].bdev == "/dev/xvd-nvme2n1"
    assert [d.name for d in scan.slow] == ["nvme0n1"]
    assert len([r for r in caplog.records if "has not answered" in r.getMessage()]) == 1
    again = discovery.scan()
    assert again.slow == []  # reported once
    assert controllers.calls[str(tmp_path / "nvme0n1")] == 1  # never a second one in flight
    assert controllers.calls[str(tmp_path / "nvme2n1")] == 1  # known: not asked again
    controllers.release.set()
    deadline = time.monotonic() + 10
    while "nvme0n1" not in {d.name for d in discovery.scan().devices if d.bdev}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert any("answered after" in r.getMessage() for r in caplog.records)


def test_a_failed_identify_is_asked_again_at_the_next_scan(tmp_path):
    controllers = Controllers()
    controllers.failing.add("nvme2n1")
    discovery = Discovery(str(SYSFS_FIXTURES / "ec2-mixed"), str(tmp_path),
                          identify=controllers, identify_wait=5)
    first = {d.name: d.bdev for d in discovery.scan().devices}
    assert first["nvme2n1"] == ""
    controllers.failing.clear()
    second = {d.name: d.bdev for d in discovery.scan().devices}
    assert second["nvme2n1"] == "/dev/xvd-nvme2n1"
    assert controllers.calls[str(tmp_path / "nvme2n1")] == 2
