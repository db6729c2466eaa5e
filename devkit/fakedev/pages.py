"""Realistic 0xD0 pages for the fake device, built with the product's own encoder."""

from __future__ import annotations

import math

from nitrometer.logpage import DEFAULT_BAND_SIZES, encode_page, power_of_two_bounds

NUM_BINS = 28


def _spread(total: int, centre_bin: float, width: float, num_bins: int = NUM_BINS) -> list[int]:
    """total ops over power-of-two latency bins, log-normal around centre_bin."""
    weights = [math.exp(-((b - centre_bin) ** 2) / (2 * width * width)) for b in range(num_bins)]
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    counts[round(centre_bin)] += total - sum(counts)
    return counts


def _bins(counts: list[int]) -> list[tuple[int, int, int]]:
    bounds = power_of_two_bounds(len(counts))
    return [(lo, up, c) for (lo, up), c in zip(bounds, counts)]


def ebs_page(read_ops: int = 1_234_567, write_ops: int = 2_345_678, *,
             exceeded_iops_us: int = 0, queue_length: int = 3) -> bytes:
    """A gp3 volume some hours into its life: ~16 KiB IOs, reads ~0.5 ms, writes ~1 ms."""
    counters = {
        "total_read_ops": read_ops,
        "total_write_ops": write_ops,
        "total_read_bytes": read_ops * 16384,
        "total_write_bytes": write_ops * 16384,
        "total_read_time": read_ops * 540,
        "total_write_time": write_ops * 910,
        "ebs_volume_performance_exceeded_iops": exceeded_iops_us,
        "ebs_volume_performance_exceeded_tp": 0,
        "ec2_instance_performance_exceeded_iops": 0,
        "ec2_instance_performance_exceeded_tp": 0,
        "volume_queue_length": queue_length,
    }
    return encode_page("ebs", counters, _bins(_spread(read_ops, 10.0, 1.2)),
                       _bins(_spread(write_ops, 11.0, 1.3)))


def instance_store_page(read_ops: int = 98_765_432, write_ops: int = 45_678_901) -> bytes:
    """An i3en.xlarge local disk: reads ~80 us, writes ~30 us, with the five IO-size bands."""
    read = _spread(read_ops, 7.0, 1.0)
    write = _spread(write_ops, 5.5, 1.1)
    shares = (0.05, 0.55, 0.15, 0.15, 0.10)  # share of IOs in each size band
    band_read = [[int(c * s) for c in read[:32]] for s in shares]
    band_write = [[int(c * s) for c in write[:32]] for s in shares]
    for bands, base in ((band_read, read), (band_write, write)):  # bands add up to the base
        for b, count in enumerate(base):
            bands[1][b] += count - sum(band[b] for band in bands)
    counters = {
        "total_read_ops": read_ops,
        "total_write_ops": write_ops,
        "total_read_bytes": read_ops * 8192,
        "total_write_bytes": write_ops * 12288,
        "total_read_time": read_ops * 82,
        "total_write_time": write_ops * 31,
        "ec2_instance_performance_exceeded_iops": 1_250_000,
        "ec2_instance_performance_exceeded_tp": 0,
        "volume_queue_length": 1,
    }
    return encode_page("instance_store", counters, _bins(read), _bins(write), version=1,
                       band_sizes=DEFAULT_BAND_SIZES, band_read=band_read,
                       band_write=band_write)
