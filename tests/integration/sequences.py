"""Page sequences a real device can produce, for the agent and snapshot through the ioctl path.

Each scenario is a list of cumulative pages the fake device hands out one per read (the last
one stays), and the running totals a person would expect from them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from devkit.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, identify_bytes
from devkit.pages import NUM_BINS, PageBuilder

PAGES = 6
READS, WRITES = 1000, 100


@dataclass
class Scenario:
    name: str
    device: str  # nvme1n1
    kind: str
    pages: list[bytes]
    read_ops_total: int  # what the agent's read_ops_total ends at
    control: str = ""  # the fake device's behaviour (hang=MS)
    serial: str = ""
    notes: dict = field(default_factory=dict)

    @property
    def controller(self) -> str:
        return self.device[: self.device.index("n", 4)]

    @property
    def identify(self) -> bytes:
        raw = self.serial.replace("-", "") if self.kind == "ebs" else self.serial
        model = MODEL_EBS if self.kind == "ebs" else MODEL_INSTANCE_STORE
        return identify_bytes(raw, model)


def _pages(kind: str, step) -> list[bytes]:
    builder, out = PageBuilder(kind), []
    for i in range(PAGES):
        page = step(builder, i)
        out.append(page if page is not None else builder.page())
    return out


def counter_back(b: PageBuilder, i: int):
    before = b.counters.get("total_write_time", 0)
    b.advance(reads=READS, writes=WRITES)
    if i == 2:  # one counter steps back 10 us while every other one grows
        b.counters["total_write_time"] = before - 10


def bin_back(b: PageBuilder, i: int):
    b.advance(reads=READS, writes=WRITES, read_bin=4 if i == 0 else 5)
    if i == 2:  # one u32 bin drops by 1: no wrap, a glitch
        b.read_counts[4] -= 1


def reset(b: PageBuilder, i: int):
    if i == 3:  # the device restarted: both op counters go down
        b.reset()
        b.advance(reads=500, writes=50)
        return None
    b.advance(reads=READS, writes=WRITES)


def layout(b: PageBuilder, i: int):
    if i == 2:  # same serial, fewer bins (a firmware update)
        b.bounds = b.bounds[:NUM_BINS - 4]
        b.read_counts = b.read_counts[:NUM_BINS - 4]
        b.write_counts = b.write_counts[:NUM_BINS - 4]
    b.advance(reads=READS, writes=WRITES)


def version_2(b: PageBuilder, i: int):
    b.advance(reads=READS, writes=WRITES)
    page = bytearray(b.page())
    struct.pack_into("<I", page, 4, 2)  # a newer page version, same layout
    return bytes(page)


def _with_counter(b: PageBuilder, index: int, value: int) -> bytes:
    """The builder's page with one counter (page order, LOGPAGE.md) set to value."""
    page = bytearray(b.page())
    struct.pack_into("<Q", page, 8 + 8 * index, value)
    return bytes(page)


def read_ops_spike(b: PageBuilder, i: int):
    b.advance(reads=READS, writes=WRITES)
    if i == 2:  # one page 10^12 ops ahead, the next ones back on track
        return _with_counter(b, 0, b.counters["total_read_ops"] + 10**12)
    return None


def write_ops_max(b: PageBuilder, i: int):
    b.advance(reads=READS, writes=WRITES)
    if i == 2:  # write ops read as 2^64 - 1 once
        return _with_counter(b, 1, 2**64 - 1)
    return None


def back_by_one_never_wrote(b: PageBuilder, i: int):
    b.advance(reads=READS)
    if i in (2, 4):  # read ops back by one on two pages, flapping; writes stay 0
        return _with_counter(b, 0, b.counters["total_read_ops"] - READS - 1)
    return None


def steady(b: PageBuilder, i: int):
    b.advance(reads=READS, writes=WRITES)


def scenarios() -> list[Scenario]:
    full = READS * PAGES
    return [
        # The first page counts from the device's zero, so the total is the device's own
        # counter unless an interval is lost.
        Scenario("one counter back", "nvme1n1", "ebs", _pages("ebs", counter_back), full,
                 serial="vol-0000000000000c0a1"),
        Scenario("one bin back", "nvme2n1", "instance_store",
                 _pages("instance_store", bin_back), full, serial="AWSBINBACK0000000002"),
        # 3000 before the restart, 500 since it, 1000 x 2 after: 5500 (the device says 2500).
        Scenario("reset", "nvme3n1", "instance_store", _pages("instance_store", reset),
                 3 * READS + 500 + 2 * READS, serial="AWSRESET000000000003"),
        # The interval into the new layout (read 2) is lost: 5000, not 6000.
        Scenario("layout change", "nvme4n1", "ebs", _pages("ebs", layout), full - READS,
                 serial="vol-0000000000000c0a4"),
        Scenario("version 2", "nvme5n1", "instance_store",
                 _pages("instance_store", version_2), full, serial="AWSVERSION2000000005"),
        Scenario("slow reads", "nvme6n1", "ebs", _pages("ebs", steady), full,
                 control="hang=200", serial="vol-0000000000000c0a6"),
        Scenario("hung", "nvme7n1", "instance_store", _pages("instance_store", steady), 0,
                 control="hang=120000", serial="AWSHUNG0000000000007"),
        Scenario("renamed", "nvme8n1", "instance_store", _pages("instance_store", steady), full,
                 serial="AWSRENAMED0000000008"),
        # Transient pages no device can produce leave the totals at the device's growth.
        Scenario("read ops spike", "nvme10n1", "instance_store",
                 _pages("instance_store", read_ops_spike), full, serial="AWSSPIKE000000000010"),
        Scenario("write ops at 2^64-1", "nvme11n1", "ebs", _pages("ebs", write_ops_max), full,
                 serial="vol-0000000000000c0b1"),
        Scenario("read ops back by one, never wrote", "nvme12n1", "ebs",
                 _pages("ebs", back_by_one_never_wrote), full, serial="vol-0000000000000c0b2"),
    ]


def write_sysfs(root: Path, devices: list[tuple[str, str, str]]) -> None:
    """<root>/class/nvme/nvmeN/{model,serial,firmware_rev,state}, nvmeNn1/{nsid,size}."""
    for name, kind, serial in devices:
        controller = name[: name.index("n", 4)]
        ctrl = root / "class" / "nvme" / controller
        (ctrl / name).mkdir(parents=True, exist_ok=True)
        model = MODEL_EBS if kind == "ebs" else MODEL_INSTANCE_STORE
        (ctrl / "model").write_text(model.ljust(40) + "\n")
        (ctrl / "serial").write_text(serial.replace("-", "").ljust(20) + "\n")
        (ctrl / "firmware_rev").write_text("1.0\n")
        (ctrl / "state").write_text("live\n")
        (ctrl / name / "nsid").write_text("1\n")
        (ctrl / name / "size").write_text("2097152\n")
