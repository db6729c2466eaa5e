"""Simulated devices and hosts: real binary pages from a workload model for a chosen instance
type, and a host CPU that follows their IO. What `make run` shows without EC2 NVMe hardware."""
