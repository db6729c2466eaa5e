"""Log pages shipped with the package, so `nitrometer decode --sample NAME` has something to
show before any device is at hand: nvme-cli prints the same values for them."""

from __future__ import annotations

from pathlib import Path

from nitrometer.errors import NitrometerError

SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "samples"
SAMPLES = {
    "ebs": "EBS volume, version 0",
    "instance-store": "instance store, version 1 with IO-size bands",
}


def read_sample(name: str) -> bytes:
    if name not in SAMPLES:
        raise NitrometerError(f"unknown sample {name!r} (known: {', '.join(SAMPLES)})")
    return (SAMPLES_DIR / f"{name}.bin").read_bytes()
