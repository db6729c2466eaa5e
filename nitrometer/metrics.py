"""Metric names: the public contract. The exporter, rules and dashboards all import them here.

Names are the exposed series names (counters end in _total); histograms name the family
(series add _bucket, _sum, _count). Base units throughout: seconds, bytes, USD.
"""

# Labels every per-device series carries; identity (model, bdev) lives only in DEVICE_INFO.
DEVICE_LABELS = ("device", "serial", "kind")

# Per-device counters, from the page's cumulative counters.
READ_OPS = "ec2_nvme_read_ops_total"
WRITE_OPS = "ec2_nvme_write_ops_total"
READ_BYTES = "ec2_nvme_read_bytes_total"
WRITE_BYTES = "ec2_nvme_write_bytes_total"
READ_TIME = "ec2_nvme_read_time_seconds_total"
WRITE_TIME = "ec2_nvme_write_time_seconds_total"
EXCEEDED_SECONDS = "ec2_nvme_performance_exceeded_seconds_total"  # + scope, limit
QUEUE_LENGTH = "ec2_nvme_queue_length"  # gauge

# Histograms built from the page's bins; _sum is the device's total time.
LATENCY = "ec2_nvme_latency_seconds"  # + op
IO_SIZE_LATENCY = "ec2_nvme_io_size_latency_seconds"  # + op, io_size (instance store)

# What 1 Hz polling sees and a 15-60 s scrape cannot.
# "Exceeded" in an interval: over the limit for at least exceeded.min-share of it (1 %).
EXCEEDED_INTERVALS = "ec2_nvme_exceeded_intervals_total"  # intervals with any limit exceeded
EXCEEDED_EPISODES = "ec2_nvme_exceeded_episodes_total"  # + scope, limit; ended episodes
EXCEEDED_NOW = "ec2_nvme_performance_exceeded"  # gauge 0/1 + scope, limit; the last interval
PEAK_IOPS = "ec2_nvme_peak_iops"  # gauge + op; max 1 s IOPS over the peak window
PEAK_THROUGHPUT = "ec2_nvme_peak_throughput_bytes_per_second"  # gauge + op
# gauge + op; the highest 1 s p99 latency over the peak window. A gauge, so the quantile is
# in the name (promtool accepts a quantile label on summaries only).
PEAK_LATENCY_P99 = "ec2_nvme_peak_latency_p99_seconds"
DEVICE_INFO = "ec2_nvme_device_info"  # gauge 1 + model, bdev, firmware, page_version,
# volume_id, volume_type (EBS)

# Headroom: the limits each device works under, so "% of limit" is PromQL. An EBS volume's
# provisioned IOPS and throughput (from the EC2 API or the config file):
VOLUME_IOPS_LIMIT = "ec2_nvme_volume_iops_limit"  # gauge, device labels
VOLUME_THROUGHPUT_LIMIT = "ec2_nvme_volume_throughput_limit_bytes_per_second"  # gauge
# The instance's limits by instance type (packaged data, sources in data/SOURCES.md), shared
# by all its devices of a kind: + kind (ebs, instance_store), op (read, write).
INSTANCE_IOPS_LIMIT = "ec2_instance_iops_limit"  # gauge
INSTANCE_THROUGHPUT_LIMIT = "ec2_instance_throughput_limit_bytes_per_second"  # gauge

# Who drove it: per-workload (cgroup) IO on each device, + workload. The top K workloads by
# ops over the last minute, the rest as workload="other" (rule in docs/metrics.md).
WORKLOAD_READ_OPS = "ec2_nvme_workload_read_ops_total"
WORKLOAD_WRITE_OPS = "ec2_nvme_workload_write_ops_total"
WORKLOAD_READ_BYTES = "ec2_nvme_workload_read_bytes_total"
WORKLOAD_WRITE_BYTES = "ec2_nvme_workload_write_bytes_total"
# Each exceeded interval's length times the workload's share of the device's ops in it:
# sums over the workloads to the exceeded intervals' time the cgroups account for.
WORKLOAD_EXCEEDED_SECONDS = "ec2_nvme_workload_exceeded_seconds_total"
# gauge 0..1: the workload's share of the device's ops in the current or last exceeded episode
WORKLOAD_EXCEEDED_SHARE = "ec2_nvme_workload_exceeded_io_share"
# Kubernetes names, from the API in a cluster: gauge 1 + workload, namespace, pod, container
WORKLOAD_INFO = "ec2_nvme_workload_info"
# gauge 1 + device labels, persistentvolume, namespace, persistentvolumeclaim
VOLUME_CLAIM_INFO = "ec2_nvme_volume_claim_info"

# Label values.
SCOPES = ("volume", "instance")
LIMITS = ("iops", "throughput")
OPS = ("read", "write")

# The instance, for fleet views and the live savings model.
INSTANCE_INFO = "ec2_instance_info"  # instance_id, instance_type, family, size, arch, region, az
NORMALIZATION_FACTOR = "ec2_instance_normalization_factor"
PRICE = "ec2_instance_price_usd_per_hour"  # on-demand Linux rate of this instance type
GRAVITON_PRICE = "ec2_instance_graviton_price_usd_per_hour"  # + graviton_instance_type
# Instance time in seconds, Prometheus's base unit: increase() / 3600 gives the instance-hours
# a bill counts, and the normalized ones the normalized instance hours (NIH).
INSTANCE_SECONDS = "ec2_instance_seconds_total"
NORMALIZED_SECONDS = "ec2_instance_normalized_seconds_total"
SECONDS_PER_HOUR = 3600
COST = "ec2_instance_cost_usd_total"
GRAVITON_COST = "ec2_instance_graviton_cost_usd_total"  # what the same hours cost on Graviton

# Host context beside the device numbers: a starved host is not a slow device.
HOST_CPU_BUSY = "nitrometer_host_cpu_busy_ratio"  # gauge, last second
HOST_CPU_IOWAIT = "nitrometer_host_cpu_iowait_ratio"  # gauge, last second
# CPU-seconds over all CPUs, as counters: increase(busy) / increase(total) is the busy share
# over any window, which the measured NIH reduction needs to compare hosts at equal load.
HOST_CPU_BUSY_SECONDS = "nitrometer_host_cpu_busy_seconds_total"
HOST_CPU_SECONDS = "nitrometer_host_cpu_seconds_total"

# The agent itself.
BUILD_INFO = "nitrometer_build_info"
POLL_DURATION = "nitrometer_poll_duration_seconds"  # histogram
POLL_OVERRUNS = "nitrometer_poll_overruns_total"
DEVICE_ERRORS = "nitrometer_device_errors_total"  # + device, reason
# promtool rejects "counter" inside a metric name, hence not ..._counter_resets_total.
COUNTER_RESETS = "nitrometer_device_resets_total"  # + device labels
# A single field that went down while the others grew: given no growth, counted here.
GLITCHES = "nitrometer_device_glitches_total"  # + device labels, field
LAYOUT_CHANGES = "nitrometer_device_layout_changes_total"  # new bins or bands: new baseline
READER_RESTARTS = "nitrometer_reader_restarts_total"  # privileged readers replaced
TICK_ERRORS = "nitrometer_tick_errors_total"  # ticks that raised (logged, sampling goes on)
DEVICES = "nitrometer_devices"  # gauge + kind
DEVICE_UP = "nitrometer_device_up"  # gauge + device labels


def family(name: str) -> str:
    """The name prometheus_client's *MetricFamily wants: counters without _total."""
    return name[: -len("_total")] if name.endswith("_total") else name
