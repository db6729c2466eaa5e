"""Tiny page sources for agent tests: real binary pages from nitrometer.logpage.encode_page."""

from __future__ import annotations

import errno

from nitrometer.collectors.base import Device
from nitrometer.logpage import DEFAULT_BAND_SIZES, DETAIL_BINS, encode_page, power_of_two_bounds

NUM_BINS = 28
SCOPE_COUNTERS = {
    ("volume", "iops"): "ebs_volume_performance_exceeded_iops",
    ("volume", "throughput"): "ebs_volume_performance_exceeded_tp",
    ("instance", "iops"): "ec2_instance_performance_exceeded_iops",
    ("instance", "throughput"): "ec2_instance_performance_exceeded_tp",
}


def device(name="nvme1n1", serial="AWS1234567890ABCDEF", kind="instance_store") -> Device:
    model = ("Amazon EC2 NVMe Instance Storage" if kind == "instance_store"
             else "Amazon Elastic Block Store")
    return Device(name=name, path=f"/dev/{name}", kind=kind, serial=serial, model=model,
                  controller=name.split("n1")[0], firmware="0")


class PageBuilder:
    """Cumulative device state; advance() adds one interval of IO, page() encodes it."""

    def __init__(self, kind: str = "instance_store"):
        self.kind = kind
        self.bounds = power_of_two_bounds(NUM_BINS)
        self.reset()

    def reset(self) -> None:
        """The device restarts its counters (stop/start, re-provisioning)."""
        self.counters = {}
        self.read_counts = [0] * NUM_BINS
        self.write_counts = [0] * NUM_BINS
        self.band_read = [[0] * DETAIL_BINS for _ in DEFAULT_BAND_SIZES]
        self.band_write = [[0] * DETAIL_BINS for _ in DEFAULT_BAND_SIZES]

    def add(self, name: str, value: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + value

    def advance(self, reads=0, writes=0, *, read_bin=4, write_bin=8, read_size=4096,
                write_size=16384, band=1, exceeded=None, queue=0) -> None:
        """reads/writes IOs, each of the given size, all landing in one latency bin."""
        self.add("total_read_ops", reads)
        self.add("total_write_ops", writes)
        self.add("total_read_bytes", reads * read_size)
        self.add("total_write_bytes", writes * write_size)
        # Time consistent with the bin: each IO takes its bin's lower bound + 1 us.
        self.add("total_read_time", reads * (self.bounds[read_bin][0] + 1))
        self.add("total_write_time", writes * (self.bounds[write_bin][0] + 1))
        for key, us in (exceeded or {}).items():
            self.add(SCOPE_COUNTERS[key], us)
        self.counters["volume_queue_length"] = queue
        self.read_counts[read_bin] += reads
        self.write_counts[write_bin] += writes
        self.band_read[band][read_bin] += reads
        self.band_write[band][write_bin] += writes

    def page(self) -> bytes:
        read_bins = [(lo, up, c) for (lo, up), c in zip(self.bounds, self.read_counts)]
        write_bins = [(lo, up, c)
                      for (lo, up), c in zip(self.bounds, self.write_counts)]
        if self.kind != "instance_store":
            return encode_page(self.kind, self.counters, read_bins, write_bins)
        return encode_page(self.kind, self.counters, read_bins, write_bins,
                           band_sizes=DEFAULT_BAND_SIZES, band_read=self.band_read,
                           band_write=self.band_write)


class ScriptedSource:
    """A PageSource whose device follows script(builder, read_index) before each read.

    fail(read_index) returning an errno makes that read raise OSError like a failing ioctl.
    """

    def __init__(self, dev: Device, clock, script, *, kind=None, fail=None):
        self.device = dev
        self.clock = clock
        self.builder = PageBuilder(kind or dev.kind)
        self.script = script
        self.fail = fail
        self.reads = 0
        self.closed = False

    def read(self) -> tuple[bytes, float]:
        index = self.reads
        self.reads += 1
        code = self.fail(index) if self.fail else None
        if code:
            raise OSError(code, f"{self.device.path}: injected {errno.errorcode[code]}")
        self.script(self.builder, index)
        return self.builder.page(), self.clock.monotonic()

    def close(self) -> None:
        self.closed = True
