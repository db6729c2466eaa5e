"""The 0xD0 log page layout, and an encoder that writes pages byte for byte.

Decoding is the C core's job (nitrometer.native); the encoder is here because the
simulator must produce the same bytes a device would, and tests build fixtures with it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

MAGIC_EBS = 0x3C23B510
MAGIC_INSTANCE_STORE = 0xEC2C0D7E
KINDS = {"ebs": MAGIC_EBS, "instance_store": MAGIC_INSTANCE_STORE}

BASE_PAGE_LEN = 4096
DETAIL_PAGE_LEN = 8192
MAX_BINS = 64
DETAIL_BINS = 32
MAX_BANDS = 8
NO_SIZE_BOUND = 0xFFFFFFFF
OPEN_ENDED_US = 0xFFFFFFFFFFFFFFFF

# nvme-cli's JSON keys, in page order (offset 8 + 8 * index).
COUNTERS = (
    "total_read_ops",
    "total_write_ops",
    "total_read_bytes",
    "total_write_bytes",
    "total_read_time",
    "total_write_time",
    "ebs_volume_performance_exceeded_iops",
    "ebs_volume_performance_exceeded_tp",
    "ec2_instance_performance_exceeded_iops",
    "ec2_instance_performance_exceeded_tp",
    "volume_queue_length",
)

# (scope, limit) -> the counter holding microseconds spent over that limit.
EXCEEDED_COUNTERS = {
    ("volume", "iops"): "ebs_volume_performance_exceeded_iops",
    ("volume", "throughput"): "ebs_volume_performance_exceeded_tp",
    ("instance", "iops"): "ec2_instance_performance_exceeded_iops",
    ("instance", "throughput"): "ec2_instance_performance_exceeded_tp",
}


def exceeded_limits(kind: str) -> tuple[tuple[str, str], ...]:
    """The limits a device of this kind can exceed: volume limits are EBS only."""
    return tuple(key for key in EXCEEDED_COUNTERS if kind == "ebs" or key[0] == "instance")


OFF_COUNTERS = 8
OFF_READ_HIST = 512
OFF_WRITE_HIST = 2056
OFF_NUM_HISTS = 3600
OFF_IO_SIZES = 3604
OFF_DETAIL = 4096
HIST_BIN_LEN = 24
DETAIL_BLOCK_LEN = 512

# The EC2 guide's IO-size bands: (0, 512B], (512B, 4K], (4K, 8K], (8K, 32K], (32K, max].
DEFAULT_BAND_SIZES = (512, 4096, 8192, 32768, NO_SIZE_BOUND)

Bin = tuple[int, int, int]  # lower us, upper us, count


def power_of_two_bounds(num_bins: int = 28) -> list[tuple[int, int]]:
    """[0,1], [1,2], [2,4], ... with the last bin open ended, as devices report them."""
    bounds = [(0, 1)] + [(1 << (i - 1), 1 << i) for i in range(1, num_bins - 1)]
    bounds.append((bounds[-1][1], OPEN_ENDED_US))
    return bounds[:num_bins]


def _pack_hist(page: bytearray, offset: int, bins: Sequence[Bin]) -> None:
    struct.pack_into("<Q", page, offset, len(bins))
    for b, (lower, upper, count) in enumerate(bins):
        struct.pack_into("<QQII", page, offset + 8 + b * HIST_BIN_LEN, lower, upper,
                         count & 0xFFFFFFFF, 0)


def encode_page(
    kind: str,
    counters: Mapping[str, int],
    read_bins: Sequence[Bin],
    write_bins: Sequence[Bin],
    *,
    version: int | None = None,
    band_sizes: Sequence[int] = (),
    band_read: Sequence[Sequence[int]] = (),
    band_write: Sequence[Sequence[int]] = (),
) -> bytes:
    """A raw page: 4096 bytes, or 8192 for instance storage with IO-size detail (version
    1, or a newer version that keeps its layout)."""
    if version is None:
        version = 1 if band_sizes else 0
    detail = version >= 1 and kind == "instance_store"
    page = bytearray(DETAIL_PAGE_LEN if detail else BASE_PAGE_LEN)
    struct.pack_into("<II", page, 0, KINDS[kind], version)
    for i, name in enumerate(COUNTERS):
        struct.pack_into("<Q", page, OFF_COUNTERS + 8 * i, int(counters.get(name, 0)))
    _pack_hist(page, OFF_READ_HIST, read_bins)
    _pack_hist(page, OFF_WRITE_HIST, write_bins)
    struct.pack_into("<I", page, OFF_NUM_HISTS, len(band_sizes))
    for i, size in enumerate(band_sizes):
        struct.pack_into("<I", page, OFF_IO_SIZES + 4 * i, size)
    if detail:
        for i, (reads, writes) in enumerate(zip(band_read, band_write)):
            block = OFF_DETAIL + i * DETAIL_BLOCK_LEN
            struct.pack_into(f"<{len(reads)}Q", page, block, *reads)
            struct.pack_into(f"<{len(writes)}Q", page, block + 256, *writes)
    return bytes(page)
