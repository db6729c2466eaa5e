"""Find NVMe controllers in sysfs and say which are Amazon's; re-scans report hot plug.

Device identity comes from two places: sysfs (model, serial, firmware) for discovered
devices, and Identify Controller through the ioctl for devices named on the command line
and for the EBS attach-time block device name, which only the vendor bytes hold.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

from nitrometer.collectors.attach_names import IDENTIFY_WAIT, AttachNames
from nitrometer.collectors.base import KIND_EBS, KIND_INSTANCE_STORE, KIND_OTHER, Device

log = logging.getLogger(__name__)

AMAZON_VID = 0x1D0F
MODEL_KINDS = {
    "Amazon Elastic Block Store": KIND_EBS,
    "Amazon EC2 NVMe Instance Storage": KIND_INSTANCE_STORE,
}
CONTROLLER_NSID = 0xFFFFFFFF  # what nvme-cli sends on the controller char device

_CONTROLLER_RE = re.compile(r"^nvme(\d+)$")
_NAMESPACE_RE = re.compile(r"^nvme(\d+)n(\d+)$")
# With native multipath the controller holds a hidden path (nvme0c0n1); the block device is
# the subsystem's head (nvme0n1), listed under class/nvme-subsystem.
_PATH_RE = re.compile(r"^nvme(\d+)c\d+n(\d+)$")
_VOLUME_RE = re.compile(r"^vol(?!-)([0-9a-f]+)$")


def kind_of_model(model: str) -> str:
    return MODEL_KINDS.get(model.strip(), KIND_OTHER)


def volume_id(serial: str) -> str:
    """EBS serials drop the dash: vol0123... is volume vol-0123..."""
    match = _VOLUME_RE.match(serial.strip())
    return f"vol-{match.group(1)}" if match else serial.strip()


def _field(buf: bytes, start: int, end: int) -> str:
    return buf[start:end].split(b"\0", 1)[0].decode("ascii", "replace").strip()


@dataclass(frozen=True)
class ControllerIdentity:
    """The fields of Identify Controller nitrometer uses (offsets in docs/logpage.md)."""

    vid: int
    serial: str
    model: str
    firmware: str
    bdev: str  # EBS vendor bytes 3072..3103: the name given at attach time

    @property
    def is_amazon(self) -> bool:
        return self.vid == AMAZON_VID

    @property
    def kind(self) -> str:
        return kind_of_model(self.model) if self.is_amazon else KIND_OTHER


def parse_identify(buf: bytes) -> ControllerIdentity:
    if len(buf) < 4096:
        raise ValueError(f"Identify Controller data is {len(buf)} bytes, expected 4096")
    (vid,) = struct.unpack_from("<H", buf, 0)
    model = _field(buf, 24, 64)
    bdev = _field(buf, 3072, 3104) if kind_of_model(model) == KIND_EBS else ""
    return ControllerIdentity(vid=vid, serial=_field(buf, 4, 24), model=model,
                              firmware=_field(buf, 64, 72), bdev=bdev)


def split_device_name(name: str) -> tuple[str, int | None]:
    """nvme1n2 -> ("nvme1", 2); nvme1 -> ("nvme1", None); anything else is a ValueError."""
    base = os.path.basename(name.rstrip("/"))
    if match := _NAMESPACE_RE.match(base):
        return f"nvme{match.group(1)}", int(match.group(2))
    if _CONTROLLER_RE.match(base):
        return base, None
    raise ValueError(f"{name!r} is not an NVMe device name (expected nvme1n1 or /dev/nvme1n1)")


def device_from_identify(path: str, ident: ControllerIdentity) -> Device:
    """A Device for a path named by the user, identified through the ioctl."""
    controller, nsid = split_device_name(path)
    kind = ident.kind
    return Device(
        name=os.path.basename(path),
        path=path,
        kind=kind,
        serial=volume_id(ident.serial) if kind == KIND_EBS else ident.serial,
        model=ident.model,
        controller=controller,
        bdev=ident.bdev,
        firmware=ident.firmware,
        nsid=CONTROLLER_NSID if nsid is None else nsid,
    )


def identify_path(path: str, admin=None) -> ControllerIdentity:
    """Identify Controller on a device node; OSError / NvmeStatusError on failure.

    `admin` sends the command (privsep.Broker in the agent); None: the installed one, or
    this process itself.
    """
    from nitrometer import privsep

    admin = admin or privsep.current_admin() or privsep.DIRECT
    return parse_identify(admin.identify(path))


def _read_attr(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _multipath_head(sysfs_root: Path, controller: str, ns_number: str) -> str:
    """The head block device of a hidden multipath namespace path."""
    try:
        for subsys in (sysfs_root / "class" / "nvme-subsystem").iterdir():
            if (subsys / controller).exists():
                for entry in subsys.iterdir():
                    match = _NAMESPACE_RE.match(entry.name)
                    if match and match.group(2) == ns_number:
                        return entry.name
    except OSError:
        pass
    # Each EC2 controller is its own subsystem, numbered like the controller as a rule.
    return f"{controller}n{ns_number}"


def _namespace(sysfs_root: Path, ctrl_dir: Path, controller: str) -> tuple[str, int] | None:
    """The controller's lowest-numbered namespace: (nvmeNnM, nsid)."""
    found = []
    number = controller[len("nvme"):]
    try:
        entries = list(ctrl_dir.iterdir())
    except OSError:
        return None
    for entry in entries:
        match = _NAMESPACE_RE.match(entry.name) or _PATH_RE.match(entry.name)
        if not match or match.group(1) != number:
            continue
        name = entry.name
        if _PATH_RE.match(name):
            name = _multipath_head(sysfs_root, controller, match.group(2))
        nsid_text = _read_attr(entry / "nsid")
        nsid = int(nsid_text) if nsid_text.isdigit() else int(match.group(2))
        found.append((nsid, name))
    if not found:
        return None
    nsid, name = min(found)
    return name, nsid


@dataclass
class Scan:
    devices: list[Device]
    added: list[Device] = field(default_factory=list)
    removed: list[Device] = field(default_factory=list)
    slow: list[Device] = field(default_factory=list)  # Identify past its deadline, newly


class Discovery:
    """Walks <sysfs>/class/nvme; each scan() says what came and went since the last one.

    The caller decides when to re-scan. The EBS bdev name needs an Identify ioctl, done
    once per controller and volume and remembered; the controllers are asked at once, each
    in its own thread, so one that hangs holds back no other device (attach_names).
    """

    def __init__(self, sysfs_root: str = "/sys", dev_root: str = "/dev", *,
                 read_bdev: bool = True, identify=None, identify_wait: float = IDENTIFY_WAIT):
        self.sysfs_root = Path(sysfs_root)
        self.dev_root = dev_root
        self.read_bdev = read_bdev
        self._known: dict[tuple[str, str], Device] = {}
        self.names = AttachNames(identify or identify_path, identify_wait)

    @property
    def class_dir(self) -> Path:
        return self.sysfs_root / "class" / "nvme"

    def _controllers(self) -> list[str]:
        try:
            names = [p.name for p in self.class_dir.iterdir()]
        except OSError:
            return []
        return sorted((n for n in names if _CONTROLLER_RE.match(n)),
                      key=lambda n: int(n[len("nvme"):]))

    def _device(self, controller: str) -> Device | None:
        ctrl_dir = self.class_dir / controller
        model = _read_attr(ctrl_dir / "model")
        serial = _read_attr(ctrl_dir / "serial")
        if not model and not serial:
            return None  # vanished while we looked
        kind = kind_of_model(model)
        namespace = _namespace(self.sysfs_root, ctrl_dir, controller)
        if namespace is None:
            name, nsid = controller, CONTROLLER_NSID
        else:
            name, nsid = namespace
        device = Device(
            name=name,
            path=os.path.join(self.dev_root, name),
            kind=kind,
            serial=volume_id(serial) if kind == KIND_EBS else serial,
            model=model,
            controller=controller,
            firmware=_read_attr(ctrl_dir / "firmware_rev"),
            nsid=nsid,
        )
        return device

    def scan(self) -> Scan:
        devices = [d for d in map(self._device, self._controllers()) if d is not None]
        slow: list[Device] = []
        if self.read_bdev:
            names, slow = self.names.lookup([d for d in devices if d.kind == KIND_EBS])
            devices = [replace(d, bdev=names[(d.controller, d.serial)])
                       if (d.controller, d.serial) in names else d for d in devices]
        current = {(d.name, d.serial): d for d in devices}
        added = [d for key, d in current.items() if key not in self._known]
        removed = [d for key, d in self._known.items() if key not in current]
        self._known = current
        return Scan(devices=devices, added=added, removed=removed, slow=slow)
