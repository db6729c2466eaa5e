"""Fixture pages and an in-memory page source for the CLI tests."""

from __future__ import annotations

from nitrometer.collectors.base import Device, FastClock
from nitrometer.logpage import DEFAULT_BAND_SIZES, encode_page, power_of_two_bounds

NUM_BINS = 28
BOUNDS = power_of_two_bounds(NUM_BINS)

EBS = Device(name="nvme1n1", path="/dev/nvme1n1", kind="ebs", serial="vol-0123456789abcdef0",
             model="Amazon Elastic Block Store", controller="nvme1", bdev="sdf")
LOCAL = Device(name="nvme2n1", path="/dev/nvme2n1", kind="instance_store",
               serial="AWS1A2B3C4D5E6F7A8B9", model="Amazon EC2 NVMe Instance Storage",
               controller="nvme2")


def bins(counts: dict[int, int]) -> list[tuple[int, int, int]]:
    """Bins with counts at the given bin indexes (bin i covers [2^(i-1), 2^i] us)."""
    return [(lo, up, counts.get(i, 0)) for i, (lo, up) in enumerate(BOUNDS)]


def page(kind: str, *, read: dict[int, int], write: dict[int, int], read_size: int = 4096,
         write_size: int = 16384, read_us: int = 100, write_us: int = 200,
         exceeded: dict[str, int] | None = None, queue: int = 0,
         band_read: list[dict[int, int]] | None = None,
         band_write: list[dict[int, int]] | None = None) -> bytes:
    """A page whose counters agree with its histograms."""
    r, w = sum(read.values()), sum(write.values())
    counters = {
        "total_read_ops": r, "total_write_ops": w,
        "total_read_bytes": r * read_size, "total_write_bytes": w * write_size,
        "total_read_time": r * read_us, "total_write_time": w * write_us,
        "volume_queue_length": queue, **(exceeded or {}),
    }
    if kind == "ebs":
        return encode_page(kind, counters, bins(read), bins(write))
    band_read = band_read or [{} for _ in DEFAULT_BAND_SIZES]
    band_write = band_write or [{} for _ in DEFAULT_BAND_SIZES]
    return encode_page(kind, counters, bins(read), bins(write), version=1,
                       band_sizes=DEFAULT_BAND_SIZES,
                       band_read=[[b.get(i, 0) for i in range(32)] for b in band_read],
                       band_write=[[b.get(i, 0) for i in range(32)] for b in band_write])


def add(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}


class ListSource:
    """Hands out fixed pages one per read, stamped on the clock."""

    def __init__(self, device: Device, pages: list[bytes], clock: FastClock):
        self.device = device
        self.pages = list(pages)
        self.clock = clock
        self.closed = False

    def read(self) -> tuple[bytes, float]:
        if not self.pages:
            raise EOFError("no more pages")
        page = self.pages.pop(0)
        if isinstance(page, BaseException):  # a scripted failure or Ctrl+C at this read
            raise page
        return page, self.clock.monotonic()

    def close(self) -> None:
        self.closed = True


# Cumulative pages: an EBS volume throttled on its IOPS limit, and a local disk.
EBS_READ = {6: 1200, 7: 5400, 8: 2100, 9: 300, 12: 4}
EBS_WRITE = {8: 800, 9: 3100, 10: 900, 11: 40, 17: 2}
EBS_BASE = page("ebs", read=EBS_READ, write=EBS_WRITE,
                read_us=110, write_us=310, queue=4,
                exceeded={"ebs_volume_performance_exceeded_iops": 2_500_000})
LOCAL_READ = {5: 30000, 6: 90000, 7: 20000, 8: 400}
LOCAL_WRITE = {4: 9000, 5: 40000, 6: 8000, 11: 600}
LOCAL_BASE = page(
    "instance_store", read=LOCAL_READ, write=LOCAL_WRITE, read_us=55, write_us=40,
    read_size=4096, write_size=32768, queue=2,
    exceeded={"ec2_instance_performance_exceeded_iops": 1_250_000},
    band_read=[{5: 3000}, {5: 27000, 6: 90000, 7: 20000, 8: 400}, {}, {}, {}],
    band_write=[{}, {4: 9000, 5: 40000}, {6: 8000}, {}, {11: 600}],
)

# One second later: the volume ran 0.85 s over its IOPS limit and its queue grew; the local
# disk's large writes slowed.
EBS_NEXT = page("ebs", read=add(EBS_READ, {6: 300, 7: 900, 8: 50}),
                write=add(EBS_WRITE, {9: 400, 10: 120, 13: 6}), read_us=110, write_us=310,
                queue=17, exceeded={"ebs_volume_performance_exceeded_iops": 3_350_000})
LOCAL_NEXT = page(
    "instance_store", read=add(LOCAL_READ, {5: 1000, 6: 3000}),
    write=add(LOCAL_WRITE, {5: 2000, 11: 300}), read_us=55, write_us=40, read_size=4096,
    write_size=32768, queue=9, exceeded={"ec2_instance_performance_exceeded_iops": 1_250_000},
    band_read=[{5: 3000}, {5: 28000, 6: 93000, 7: 20000, 8: 400}, {}, {}, {}],
    band_write=[{}, {4: 9000, 5: 42000}, {6: 8000}, {}, {11: 900}],
)


class Steps:
    """The engine the commands run, over in-memory sources on a clock that never waits:
    first() gives the baselines, step() one tick's intervals."""

    def __init__(self, pairs: list[tuple[Device, list]], interval: float = 1.0):
        from nitrometer.sampling import Engine, Settings

        clock = FastClock(0, start=0.0)  # interval times are seconds since the first read
        self.engine = Engine([ListSource(d, p, clock) for d, p in pairs],
                             settings=Settings(interval=interval), clock=clock)

    def first(self) -> list:
        self.engine.wait_next()
        return self.engine.tick().baselines

    def step(self) -> list:
        self.engine.wait_next()
        return self.engine.tick().intervals


def sampler_over(pairs: list[tuple[Device, list]], interval: float = 1.0) -> Steps:
    return Steps(pairs, interval)
