"""nitrometer: EC2 NVMe detailed performance statistics, exported for Prometheus."""

__version__ = "0.1.0"
