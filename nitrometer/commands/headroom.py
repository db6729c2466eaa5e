"""How close each interval ran to its limits, where they are known: an EBS volume's
provisioned IOPS and throughput, and the instance's published limits by instance type.

A real volume's provisioned limits are not on its log page: they come from the agent's
config file (ebs.volumes, --config.file), the EC2 API (--collector.ebs_api), a recording or
the simulator. Where none has them, the command says so once and how to provide them."""

from __future__ import annotations

import argparse
import logging
import os
import textwrap
from dataclasses import dataclass, field

from nitrometer.ec2 import check_instance_type, storage_limits
from nitrometer.sampling.interval import Limits, combined_headroom

WIDTH = 80
log = logging.getLogger("nitrometer.headroom")


def add_limit_options(parser: argparse.ArgumentParser, recorded: bool = False) -> None:
    what = "recorded for replay's" if recorded else "for"
    parser.add_argument("--instance.type", dest="instance_type", metavar="TYPE",
                        help=f"{what} %% of the instance's limits (default: a simulation's "
                        "type, a recording's, or the instance's own from DMI)")
    parser.add_argument("--config.file", dest="config_file", metavar="FILE",
                        help=f"{what} %% of EBS volume limits: the agent's config file, whose "
                        "ebs.volumes gives each volume's type, iops and throughput_mib_s")
    parser.add_argument("--collector.ebs_api", dest="ebs_api", action="store_true",
                        help=f"{what} %% of EBS volume limits: ask the EC2 API "
                        "(DescribeVolumes; needs botocore and the ec2:DescribeVolumes "
                        "permission)")


@dataclass
class Headroom:
    instance_type: str = ""
    instance: dict = field(default_factory=dict)  # (kind, op) -> {"iops": .., "throughput": ..}
    volumes: dict = field(default_factory=dict)  # volume id -> ec2.VolumeLimits

    @property
    def known(self) -> bool:
        return bool(self.instance or self.volumes)

    def limits_of(self, device) -> Limits | None:
        """For the engine: what each interval's headroom is measured against."""
        volume = self.volumes.get(device.serial) if device.kind == "ebs" else None
        limits = Limits(
            volume_type=volume.volume_type if volume is not None else "",
            volume_iops=volume.iops if volume is not None else None,
            volume_throughput=volume.throughput if volume is not None else None,
            instance={op: values for (kind, op), values in self.instance.items()
                      if kind == device.kind})
        return limits if limits.known else None

    def lines(self, intervals) -> list[str]:
        """'% of limit' lines for one tick, within 80 columns."""
        return [wrapped for line in self._lines(intervals)
                for wrapped in textwrap.wrap(line, WIDTH, initial_indent="  ",
                                             subsequent_indent="    ")]

    def _lines(self, intervals) -> list[str]:
        """Per EBS volume (each interval's own headroom), then per kind for the instance
        (its devices of that kind together)."""
        out = []
        for iv in intervals:
            parts = [_share(h) for h in iv.headroom if h.scope == "volume"]
            if parts:
                volume_type = iv.limits.volume_type if iv.limits is not None else ""
                out.append(f"{iv.device.name} volume ({volume_type or 'EBS'}) at "
                           + ", ".join(parts))
        for kind, title in (("instance_store", "instance store"), ("ebs", "instance EBS")):
            mine = [iv for iv in intervals if iv.device.kind == kind]
            if not mine:
                continue
            parts = []
            for op in ("read", "write", "total"):
                bounds = self.instance.get((kind, op)) or {}
                shares = [_share(combined_headroom(mine, op, bounds[limit], limit))
                          for limit in ("iops", "throughput") if bounds.get(limit)]
                parts += [f"{op}s {s}" if op != "total" else s for s in shares]
            if parts:
                out.append(f"{title} ({self.instance_type}) at " + ", ".join(parts))
        return out


def _share(h) -> str:
    shown = f"{h.bound / 1e6:,.1f} MB/s" if h.limit == "throughput" else f"{h.bound:,.0f} IOPS"
    return f"{h.percent:.0f}% of {shown}"


def headroom_for(args, engine) -> Headroom:
    """From --instance.type, a simulation's own type, what a recording says, or the
    instance's DMI data; EBS volumes from what the simulator provisioned or the recording
    carries (real volumes need the agent's sources)."""
    from nitrometer.collectors.base import parse_source

    spec = parse_source(args.source)
    given = getattr(args, "instance_type", None)
    if given:
        instance_type = check_instance_type(given)
    elif spec.kind == "simulate":
        instance_type = spec.target
    elif spec.kind == "replay":
        instance_type = next((t.source.recorded_instance_type for t in engine.trackers.values()
                              if getattr(t.source, "recorded_instance_type", "")), "")
    else:
        instance_type = _dmi_type(args.path_sysfs)
    ebs = sorted({t.device.serial: t.device for t in engine.trackers.values()
                  if t.device.kind == "ebs"}.items())
    volumes = {t.device.serial: t.source.volume_limits for t in engine.trackers.values()
               if getattr(t.source, "volume_limits", None) is not None}
    volumes.update(_configured_volumes(getattr(args, "config_file", None)))
    missing = [serial for serial, _ in ebs if serial not in volumes]
    if missing and getattr(args, "ebs_api", False):
        volumes.update(_api_volumes(missing, args))
    unknown = [device for serial, device in ebs if serial not in volumes]
    if unknown:
        log.warning("%s: provisioned IOPS and throughput unknown, so no %% of the volume "
                    "limit; give them under ebs.volumes in --config.file, or ask the EC2 API "
                    "with --collector.ebs_api",
                    ", ".join(f"{d.name} ({d.serial})" for d in unknown))
    return Headroom(instance_type or "", storage_limits(instance_type) if instance_type
                    else {}, volumes)


def _configured_volumes(path: str | None) -> dict:
    """ebs.volumes of the agent's config file (its other keys are the agent's business)."""
    if not path:
        return {}
    from nitrometer.configfile import read_volumes

    return read_volumes(path)


def _api_volumes(volume_ids: list[str], args) -> dict:
    """DescribeVolumes for these volumes, in the instance's region (IMDS), as the agent asks."""
    from nitrometer.collectors.volumes import VolumeDirectory
    from nitrometer.identity import instance_identity

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or \
        instance_identity(dmi_root=os.path.join(args.path_sysfs,
                                                "devices/virtual/dmi/id")).region
    directory = VolumeDirectory(use_api=True, region=region or None)
    directory.lookup(volume_ids)
    return {v: found for v in volume_ids if (found := directory.get(v)) is not None}


def _dmi_type(sysfs: str) -> str:
    from nitrometer.identity import from_dmi

    try:
        ident = from_dmi(os.path.join(sysfs, "devices/virtual/dmi/id"))
    except Exception:  # DMI is a hint for the limits, never a reason to fail
        return ""
    return getattr(ident, "instance_type", "") or ""
