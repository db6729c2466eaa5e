"""How close each interval ran to its limits, where they are known: an EBS volume's
provisioned IOPS and throughput, and the instance's published limits by instance type."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field

from nitrometer.ec2 import check_instance_type, storage_limits

WIDTH = 80


@dataclass
class Headroom:
    instance_type: str = ""
    instance: dict = field(default_factory=dict)  # (kind, op) -> {"iops": .., "throughput": ..}
    volumes: dict = field(default_factory=dict)  # volume id -> ec2.VolumeLimits

    @property
    def known(self) -> bool:
        return bool(self.instance or self.volumes)

    def lines(self, intervals) -> list[str]:
        """'% of limit' lines for one tick, within 80 columns."""
        return [wrapped for line in self._lines(intervals)
                for wrapped in textwrap.wrap(line, WIDTH, initial_indent="  ",
                                             subsequent_indent="    ")]

    def _lines(self, intervals) -> list[str]:
        """Per EBS volume, then per kind for the instance."""
        out = []
        for iv in intervals:
            volume = self.volumes.get(iv.device.serial) if iv.device.kind == "ebs" else None
            if volume is None:
                continue
            iops = iv.op("read").iops + iv.op("write").iops
            tp = iv.op("read").throughput + iv.op("write").throughput
            parts = _shares([(iops, volume.iops, "IOPS"), (tp, volume.throughput, "MB/s")])
            if parts:
                out.append(f"{iv.device.name} volume ({volume.volume_type or 'EBS'}) at "
                           + ", ".join(parts))
        for kind, title in (("instance_store", "instance store"), ("ebs", "instance EBS")):
            mine = [iv for iv in intervals if iv.device.kind == kind]
            if not mine:
                continue
            parts = []
            for op in ("read", "write", "total"):
                limit = self.instance.get((kind, op))
                if not limit:
                    continue
                ops = ("read", "write") if op == "total" else (op,)
                iops = sum(iv.op(o).iops for iv in mine for o in ops)
                tp = sum(iv.op(o).throughput for iv in mine for o in ops)
                shares = _shares([(iops, limit.get("iops"), "IOPS"),
                                  (tp, limit.get("throughput"), "MB/s")])
                parts += [f"{op}s {s}" if op != "total" else s for s in shares]
            if parts:
                out.append(f"{title} ({self.instance_type}) at " + ", ".join(parts))
        return out


def _shares(items) -> list[str]:
    out = []
    for value, limit, unit in items:
        if not limit:
            continue
        shown = f"{limit / 1e6:,.1f} MB/s" if unit == "MB/s" else f"{limit:,.0f} IOPS"
        out.append(f"{100 * value / limit:.0f}% of {shown}")
    return out


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
    volumes = {t.device.serial: t.source.volume_limits for t in engine.trackers.values()
               if getattr(t.source, "volume_limits", None) is not None}
    return Headroom(instance_type or "", storage_limits(instance_type) if instance_type
                    else {}, volumes)


def _dmi_type(sysfs: str) -> str:
    from nitrometer.agent.identity import from_dmi

    try:
        ident = from_dmi(os.path.join(sysfs, "devices/virtual/dmi/id"))
    except Exception:  # DMI is a hint for the limits, never a reason to fail
        return ""
    return getattr(ident, "instance_type", "") or ""
