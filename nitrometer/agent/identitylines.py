"""The lines of every device's identity, health and counts: they change rarely, so a
renderer writes them again only when their inputs change (devicelines.DeviceRenderer)."""

from __future__ import annotations

from nitrometer import metrics as m
from nitrometer.agent.exposition import Family, labelstr

LABELS = m.DEVICE_LABELS


def identity_families(devices) -> list[Family]:
    """Every device's identity, health and counts, live or not: a few lines each."""
    info = Family(m.DEVICE_INFO, "gauge", "Device identity; value 1.")
    up = Family(m.DEVICE_UP, "gauge", "1 if the last read of the device succeeded.")
    resets = Family(m.COUNTER_RESETS, "counter", "Times the device restarted its counters.")
    layouts = Family(m.LAYOUT_CHANGES, "counter", "Times the device's histogram layout "
                     "changed (a new baseline; that interval is not counted).")
    glitches = Family(m.GLITCHES, "counter", "Intervals in which one field went down while "
                      "the device kept counting (that field got no growth).")
    count_by_kind: dict[str, int] = {kind: 0 for kind in ("ebs", "instance_store")}
    volume_iops = Family(m.VOLUME_IOPS_LIMIT, "gauge", "The EBS volume's provisioned (or "
                         "baseline) IOPS.")
    volume_tp = Family(m.VOLUME_THROUGHPUT_LIMIT, "gauge", "The EBS volume's provisioned "
                       "throughput.")
    info_names = LABELS + ("model", "bdev", "firmware", "controller", "page_version",
                           "volume_id", "volume_type")
    for d in devices:
        dev = d.device
        values = (dev.name, dev.serial, dev.kind)
        labels = labelstr(LABELS, values)
        ebs = dev.kind == "ebs"
        volume_type = d.volume.volume_type if d.volume is not None else ""
        info.add(labelstr(info_names, values + (
            dev.model, dev.bdev, dev.firmware, dev.controller, str(d.version),
            dev.serial if ebs else "", volume_type)), 1)
        if ebs and d.volume is not None:
            if d.volume.iops:
                volume_iops.add(labels, d.volume.iops)
            if d.volume.throughput:
                volume_tp.add(labels, d.volume.throughput)
        up.add(labels, 1.0 if d.up else 0.0)
        resets.add(labels, d.resets)
        layouts.add(labels, d.layout_changes)
        for name, count in sorted(d.glitches.items()):
            glitches.add(labelstr(LABELS + ("field",), values + (name,)), count)
        count_by_kind[dev.kind] = count_by_kind.get(dev.kind, 0) + 1
    seen = Family(m.DEVICES, "gauge", "Devices being polled.")
    for kind, count in sorted(count_by_kind.items()):
        seen.add(labelstr(("kind",), (kind,)), count)
    return [info, volume_iops, volume_tp, up, resets, layouts, glitches, seen]
