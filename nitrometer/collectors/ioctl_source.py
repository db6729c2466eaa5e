"""The ioctl source: Get Log Page 0xD0 straight from the device through the C extension."""

from __future__ import annotations

import errno
import os
import struct

from nitrometer import native, privsep
from nitrometer.collectors.base import KIND_EBS, KIND_INSTANCE_STORE, Clock, Device
from nitrometer.collectors.discovery import (
    CONTROLLER_NSID,
    device_from_identify,
    parse_identify,
    split_device_name,
)
from nitrometer.errors import DeviceError
from nitrometer.logpage import BASE_PAGE_LEN, DETAIL_PAGE_LEN, MAGIC_EBS, MAGIC_INSTANCE_STORE

LOG_ID = 0xD0
PAGE_LEN = {KIND_EBS: BASE_PAGE_LEN, KIND_INSTANCE_STORE: DETAIL_PAGE_LEN}


class DeviceReadError(DeviceError):
    """A device that could not be read; `reason` is short enough for a metric label."""

    reason = "io"

    def __init__(self, message: str, *, errno_value: int | None = None):
        super().__init__(message)
        self.errno = errno_value


class DevicePermissionError(DeviceReadError):
    reason = "permission"


class DeviceGoneError(DeviceReadError):
    reason = "gone"


class DeviceIOError(DeviceReadError):
    reason = "io"


class DeviceTimeoutError(DeviceReadError):
    reason = "timeout"


class NotNvmeError(DeviceReadError):
    reason = "not_nvme"


class NotEc2Error(DeviceReadError):
    reason = "not_ec2"


class NvmeStatusReadError(DeviceReadError):
    reason = "nvme_status"

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def error_from_os(path: str, exc: OSError, action: str) -> DeviceReadError:
    """One distinct, readable error per way an open or an admin ioctl fails."""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return DevicePermissionError(
            f"{path}: permission denied: needs root or CAP_SYS_ADMIN to read NVMe log pages",
            errno_value=code)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return DeviceGoneError(f"{path}: the device is gone ({os.strerror(code)}) "
                               "- detached or removed?", errno_value=code)
    if code in (errno.ETIMEDOUT, errno.EINTR):
        return DeviceTimeoutError(f"{path}: {action} timed out ({os.strerror(code)})",
                                  errno_value=code)
    if code in (errno.ENOTTY, errno.EINVAL):
        return NotNvmeError(f"{path}: not an NVMe device (the NVMe admin ioctl is refused: "
                            f"{os.strerror(code)})", errno_value=code)
    if code == errno.EIO:
        return DeviceIOError(f"{path}: I/O error during {action}", errno_value=code)
    return DeviceIOError(f"{path}: {action} failed: {os.strerror(code or 0)}", errno_value=code)


def check_magic(path: str, page: bytes) -> None:
    if len(page) < 8:
        raise NotEc2Error(f"{path}: not an EC2 NVMe device (log page 0xD0 is {len(page)} bytes)")
    (magic,) = struct.unpack_from("<I", page, 0)
    if magic not in (MAGIC_EBS, MAGIC_INSTANCE_STORE):
        raise NotEc2Error(f"{path}: not an EC2 NVMe device (log page 0xD0 magic {magic:#010x})")


def nsid_for(device: Device) -> int:
    """nsid 1 (the namespace's) on /dev/nvme1n1, 0xFFFFFFFF on the controller /dev/nvme1."""
    try:
        _, nsid = split_device_name(device.path)
    except ValueError:
        return device.nsid  # an unusual node name: trust what discovery found
    return CONTROLLER_NSID if nsid is None else device.nsid


def device_path(name: str, dev_root: str = "/dev") -> str:
    """nvme1n1 -> <dev_root>/nvme1n1; a path is taken as given."""
    try:
        split_device_name(name)
    except ValueError as exc:
        raise DeviceError(str(exc)) from None
    return name if "/" in name else os.path.join(dev_root, name)


def identify_device(path: str, admin=None) -> Device:
    """A device named on the command line, identified by Identify Controller (no sysfs).

    `admin` sends the command (privsep.Broker in the agent); None: the installed one, or
    this process itself.
    """
    admin = admin or privsep.current_admin() or privsep.DIRECT
    try:
        data = admin.identify(path)
    except OSError as exc:
        raise error_from_os(path, exc, "Identify Controller") from None
    except native.NvmeStatusError as exc:
        raise NvmeStatusReadError(f"{path}: the controller refused Identify Controller with "
                                  f"NVMe status {exc.status:#x}", exc.status) from None
    ident = parse_identify(data)
    if not ident.is_amazon:
        raise NotEc2Error(f"{path}: not an EC2 NVMe device (PCI vendor id {ident.vid:#06x}, "
                          f"model {ident.model!r})")
    device = device_from_identify(path, ident)
    if device.kind not in PAGE_LEN:
        raise NotEc2Error(f"{path}: not an EC2 NVMe device (model {ident.model!r} has no "
                          "detailed performance statistics)")
    return device


class IoctlSource:
    """Reads one device; keeps the fd open between reads and reopens it after a failure."""

    def __init__(self, device: Device, clock: Clock | None = None, admin=None):
        if device.kind not in PAGE_LEN:
            model = device.model or "unknown model"
            raise NotEc2Error(f"{device.path}: not an EC2 NVMe device ({model}); "
                              "it has no detailed performance statistics")
        self.device = device
        self.clock = clock or Clock()
        self.length = PAGE_LEN[device.kind]
        self.nsid = nsid_for(device)
        self._fd: int | None = None
        # A backend (privsep.Broker) sends the command for us; None: this process does.
        self.admin = admin or privsep.current_admin()

    def _open(self) -> int:
        if self._fd is None:
            try:
                # Read-only is enough for the admin ioctl, and keeps the device safe.
                self._fd = os.open(self.device.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise error_from_os(self.device.path, exc, "open") from None
        return self._fd

    def _get_log_page(self) -> bytes:
        if self.admin is not None:
            return self.admin.get_log_page(self.device.path, self.nsid, self.length)
        return native.get_log_page(self._open(), self.length, nsid=self.nsid, log_id=LOG_ID)

    def read(self) -> tuple[bytes, float]:
        try:
            page = self._get_log_page()
        except OSError as exc:
            self.close()
            raise error_from_os(self.device.path, exc, "Get Log Page 0xD0") from None
        except native.NvmeStatusError as exc:
            self.close()
            raise self._refused(exc.status) from None
        stamp = self.clock.monotonic()
        check_magic(self.device.path, page)
        return page, stamp

    def _refused(self, status: int) -> NvmeStatusReadError:
        return NvmeStatusReadError(
            f"{self.device.path}: the controller refused Get Log Page 0xD0 with NVMe "
            f"status {status:#x}", status)

    # -- polled: the request goes out now, its reply comes to a sink ----------------------

    @property
    def poller(self):
        """The backend that sends the read without waiting (the broker), or None."""
        admin = self.admin
        return admin if hasattr(admin, "submit_log_page") else None

    def submit_read(self, sink, token) -> None:
        """Send Get Log Page 0xD0; `outcome_of` turns its reply into what read() gives."""
        try:
            self.admin.submit_log_page(self.device.path, self.nsid, self.length, sink, token)
        except OSError as exc:
            raise error_from_os(self.device.path, exc, "Get Log Page 0xD0") from None

    def outcome_of(self, kind: int, code: int, data: bytes):
        """(page, t) for a page, or the exception read() would have raised."""
        if kind == privsep.REPLY_NVME_STATUS:
            return self._refused(code)
        if kind != privsep.REPLY_OK:
            return error_from_os(self.device.path, OSError(code, os.strerror(code)),
                                 "Get Log Page 0xD0")
        stamp = self.clock.monotonic()
        try:
            check_magic(self.device.path, data)
        except NotEc2Error as exc:
            return exc
        return data, stamp

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> IoctlSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
