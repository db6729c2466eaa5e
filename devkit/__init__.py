"""What tests and benchmarks share to run nitrometer without EC2 hardware or AWS: the fake
NVMe device (an LD_PRELOAD shim answering the admin ioctls from page files) and its sysfs,
page builders, the pure-Python reference decoder, a price list mirror in AWS's documented
layout, synthetic Cost and Usage Reports, and free loopback ports. Not shipped."""
