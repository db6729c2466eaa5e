"""Opens the page sources --source asks for, for the devices found or named."""

from __future__ import annotations

import os
from collections.abc import Sequence

from nitrometer.collectors.base import KIND_OTHER, Clock, Device, PageSource, SourceSpec
from nitrometer.collectors.discovery import Discovery, split_device_name
from nitrometer.collectors.ioctl_source import (
    DeviceReadError,
    IoctlSource,
    device_path,
    identify_device,
)
from nitrometer.errors import ConfigError, DeviceError


def discover_devices(sysfs_root: str = "/sys", dev_root: str = "/dev", *,
                     include_other: bool = False, read_bdev: bool = True) -> list[Device]:
    """Every NVMe controller in sysfs, one namespace each; non-Amazon ones only on request.
    read_bdev=False: sysfs alone, no Identify (no thread, no ioctl)."""
    devices = Discovery(sysfs_root, dev_root, read_bdev=read_bdev).scan().devices
    return [d for d in devices if include_other or d.kind != KIND_OTHER]


def _from_sysfs(name: str, sysfs_root: str, dev_root: str) -> Device | None:
    base = os.path.basename(name)
    for device in discover_devices(sysfs_root, dev_root, include_other=True):
        if base in (device.name, device.controller):
            return device
    return None


def resolve_device(name: str, *, sysfs_root: str = "/sys", dev_root: str = "/dev",
                   prefer_sysfs: bool = False) -> Device:
    """A device named on the command line. Identify through the ioctl first (it needs no
    sysfs); with prefer_sysfs (nvme-cli, which may run where the ioctl is not allowed to
    us) sysfs is asked first and Identify is the fallback."""
    path = device_path(name, dev_root)
    if prefer_sysfs:
        found = _from_sysfs(name, sysfs_root, dev_root)
        if found is not None:
            if found.kind == KIND_OTHER:
                raise DeviceError(f"{name}: not an EC2 NVMe device (model {found.model!r})")
            return found
    try:
        return identify_device(path)
    except DeviceReadError as exc:
        if exc.reason == "gone" and not os.path.exists(path):
            raise DeviceError(f"unknown device {name!r}: {path} does not exist") from None
        raise


def _select(sources: list[PageSource], names: Sequence[str], origin: str) -> list[PageSource]:
    """Only the named devices of a replay or simulation; an unknown name is an error."""
    if not names:
        return sources
    by_name: dict[str, PageSource] = {}
    for source in sources:
        by_name.setdefault(source.device.name, source)
        by_name.setdefault(source.device.serial, source)
    wanted, missing = [], []
    for name in names:
        source = by_name.get(os.path.basename(name)) or by_name.get(name)
        if source is None:
            missing.append(name)
        elif source not in wanted:
            wanted.append(source)
    if missing:
        for source in sources:
            source.close()
        known = ", ".join(sorted({s.device.name for s in sources})) or "none"
        raise DeviceError(f"unknown device {', '.join(missing)} in {origin} (it has: {known})")
    for source in sources:
        if source not in wanted:
            source.close()
    return wanted


def _devices(names: Sequence[str], sysfs_root: str, dev_root: str,
             prefer_sysfs: bool) -> list[Device]:
    if names:
        return [resolve_device(n, sysfs_root=sysfs_root, dev_root=dev_root,
                               prefer_sysfs=prefer_sysfs)
                for n in names]
    return discover_devices(sysfs_root, dev_root)


def open_source(spec: SourceSpec, device: Device, clock: Clock | None = None) -> PageSource:
    """The page source for one discovered device (ioctl or nvme-cli)."""
    if spec.kind == "ioctl":
        return IoctlSource(device, clock=clock)
    if spec.kind == "nvme-cli":
        from nitrometer.collectors.nvme_cli import NvmeCliSource

        return NvmeCliSource(device)
    raise ConfigError(f"--source {spec}: devices are not discovered for {spec.kind}")


def open_sources(spec: SourceSpec, names: Sequence[str] = (), *, sysfs_root: str = "/sys",
                 dev_root: str = "/dev", clock: Clock | None = None) -> list[PageSource]:
    """One page source per device: the named ones, or every Amazon device discovered."""
    clock = clock or Clock()
    for name in names:
        if spec.kind in ("ioctl", "nvme-cli"):
            try:
                split_device_name(name)
            except ValueError as exc:
                raise DeviceError(str(exc)) from None
    if spec.kind == "ioctl":
        return [IoctlSource(d, clock=clock)
                for d in _devices(names, sysfs_root, dev_root, False)]
    if spec.kind == "nvme-cli":
        from nitrometer.collectors.nvme_cli import NvmeCliSource

        return [NvmeCliSource(d)
                for d in _devices(names, sysfs_root, dev_root, True)]
    if spec.kind == "replay":
        from nitrometer.collectors.replay import replay_sources

        # The clock sets the pace: a FastClock replays faster than recorded.
        return _select(replay_sources(spec.target, clock), names,
                       f"recording {spec.target}")
    if spec.kind == "simulate":
        from nitrometer.sim.devices import simulated_sources

        return _select(simulated_sources(spec, clock), names, f"simulation {spec}")
    raise ConfigError(f"--source {spec}: unknown source kind {spec.kind!r}")
