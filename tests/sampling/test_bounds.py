"""What a device may add per second: the instance type's published limits with a margin, the
ceilings where none is published, and bounds that widen rather than hold a device for good."""

from __future__ import annotations

from nitrometer import ec2
from nitrometer.sampling import Engine
from nitrometer.sampling.device import DeviceTracker
from tests.native.test_guard import OPS, page

# storage_limits.csv: i3en.xlarge instance store 85,000 read / 65,000 write IOPS, no
# published throughput; its EBS limit 6,000 IOPS and 144.2 MB/s.
M = ec2.BOUND_MARGIN


def test_bounds_follow_the_published_limits():
    assert ec2.device_bounds("instance_store", "i3en.xlarge") == (
        85000 * M, ec2.CEILING_BYTES_PER_S)
    assert ec2.device_bounds("ebs", "i3en.xlarge") == (6000 * M, 144.2e6 * M)
    ceilings = (ec2.CEILING_OPS_PER_S, ec2.CEILING_BYTES_PER_S)
    assert ec2.device_bounds("ebs", None) == ceilings
    assert ec2.device_bounds("ebs", "unknown") == ceilings
    assert ec2.device_bounds("other", "i3en.xlarge") == ceilings


class _Device:
    name, serial, kind = "nvme1n1", "vol-0", "ebs"


def _tracker(bounds):
    return DeviceTracker(_Device(), None, share=0.01, episode_gap=3, ongoing_every=60,
                         bounds=bounds)


def test_an_engine_bounds_its_devices_by_the_instance_type():
    engine = Engine()
    tracker = engine._add(_Device(), None)
    assert tracker.core.bounds == (ec2.CEILING_OPS_PER_S, ec2.CEILING_BYTES_PER_S)
    engine.set_instance_type("i3en.xlarge")
    assert tracker.core.bounds == (6000 * M, 144.2e6 * M)


def test_bounds_too_tight_for_a_device_widen_instead_of_holding_it_for_good():
    # The device does OPS reads a second; bounds of a tenth of that hold its pages, three in a
    # row widen them (x4 each time), and then it counts again, nothing lost.
    tracker = _tracker((OPS / 10, 1e12))
    first = committed = 0  # as the agent counts: the standing baseline from zero, then deltas
    for second in range(12):
        interval = tracker.observe(page(second), float(second))
        if interval is not None:
            committed += interval.op("read").ops
        elif not tracker.holding and not committed:
            first = tracker.baseline["total_read_ops"]
    assert tracker.core.bounds[0] >= OPS
    assert committed > 0 and first + committed == 11 * OPS  # the device's own count
