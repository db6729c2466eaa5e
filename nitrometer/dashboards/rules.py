"""Prometheus recording and alerting rules, written as YAML rule files.

Recording rules pre-aggregate the per-device series into per-instance and per-instance-type
series so fleet dashboards over thousands of hosts read a few series, not every device's
histogram. Names follow level:metric:operations.
"""

from __future__ import annotations

import yaml

from nitrometer import metrics as m
from nitrometer.dashboards import nih

WINDOW = "5m"
TARGET = "instance, job"
INSTANCE_LABELS = "instance_type, family, arch, region"
DEVICE_KEY = "instance, job, device, serial, kind"
QUANTILES = (0.5, 0.99, 0.999)

# Defaults for the alerts; `nitrometer dashboards` can override them.
P99_THRESHOLD_SECONDS = 0.05
EXCEEDED_SHARE = 0.5  # "most of 5 minutes" over a limit
AGENT_LOOKBACK = "1h"  # how long a stopped agent is still remembered as one


def _base(metric: str) -> str:
    return m.family(metric)


# Per device: the share of each second spent over a limit, and p99 latency.
DEVICE_EXCEEDED_SHARE = f"instance_device:{_base(m.EXCEEDED_SECONDS)}:rate{WINDOW}"
DEVICE_EXCEEDED_ANY = f"instance_device:{_base(m.EXCEEDED_INTERVALS)}:rate{WINDOW}"
DEVICE_LATENCY_P99 = f"instance_device_op:{m.LATENCY}:p99_rate{WINDOW}"
# Per instance (carrying instance_type, family, arch, region from the info gauge).
INSTANCE_RATES = {metric: f"instance:{_base(metric)}:rate{WINDOW}"
                  for metric in (m.READ_OPS, m.WRITE_OPS, m.READ_BYTES, m.WRITE_BYTES,
                                 m.EXCEEDED_INTERVALS)}
INSTANCE_LATENCY_BUCKETS = f"instance_op:{m.LATENCY}_bucket:rate{WINDOW}"
INSTANCE_LATENCY_QUANTILE = f"instance_op:{m.LATENCY}:quantile_rate{WINDOW}"
# Per instance type, pooling every device of every instance of that type.
TYPE_LATENCY_BUCKETS = f"instance_type_op:{m.LATENCY}_bucket:rate{WINDOW}"
TYPE_LATENCY_QUANTILE = f"instance_type_op:{m.LATENCY}:quantile_rate{WINDOW}"
TYPE_EXCEEDED_ANY = f"instance_type:{_base(m.EXCEEDED_INTERVALS)}:rate{WINDOW}"

# Headroom: demand as a share of the limit it runs under (1 = at the limit), with a `limit`
# label (iops, throughput). An EBS volume against its provisioned IOPS and throughput...
VOLUME_UTILISATION = f"instance_device:ec2_nvme_volume_limit:ratio_rate{WINDOW}"
# ...and all of an instance's devices of a kind, per op, against the instance's limit.
INSTANCE_UTILISATION = f"instance_kind_op:ec2_nvme_instance_limit:ratio_rate{WINDOW}"
NEAR_LIMIT_SHARE = 0.8  # the near-limit alerts fire above this share...
NEAR_LIMIT_MINUTES = 15  # ...sustained this long


# The measured NIH reduction (nitrometer.dashboards.nih) over a rolling hour, per comparison
# group (job) and for the fleet, with a normal interval from the per-host spread. The fleet
# rules read this round's per-group ones (rules in a group run in order).
NIH_GROUP = "nitrometer-nih"
NIH_WINDOW = "1h"
NIH_LEVEL = 90
BASES = (nih.EQUAL_LOAD, nih.RAW)
BOUNDS = ((-1, "lower"), (1, "upper"))
NIH_GROUP_REDUCTION = {b: f"job:nitrometer_nih_reduction_percent:{b}{NIH_WINDOW}" for b in BASES}
NIH_GROUP_STDERR = {b: f"job:nitrometer_nih_reduction_stderr_percent:{b}{NIH_WINDOW}"
                    for b in BASES}
NIH_GROUP_WEIGHT = {b: f"job:nitrometer_nih_x86_normalized_instancehours:{b}{NIH_WINDOW}"
                    for b in BASES}
NIH_GROUP_BOUNDS = {sign: f"job:nitrometer_nih_reduction_{end}_percent:{nih.EQUAL_LOAD}"
                          f"{NIH_WINDOW}" for sign, end in BOUNDS}
NIH_FLEET_BASIS = {b: f"fleet:nitrometer_nih_reduction_percent:{b}{NIH_WINDOW}" for b in BASES}
NIH_FLEET = f"fleet:nitrometer_nih_reduction_percent:measured{NIH_WINDOW}"
NIH_FLEET_BOUNDS = {sign: f"fleet:nitrometer_nih_reduction_{end}_percent:measured{NIH_WINDOW}"
                    for sign, end in BOUNDS}


def _weighted(per_group: str, weight: str) -> str:
    return f"sum({per_group} * on (job) {weight}) / sum({weight} and on (job) {per_group})"


def nih_rules() -> dict:
    query = nih.Query(f"[{NIH_WINDOW}]")
    z = repr(nih.z_score(NIH_LEVEL))
    rules = []
    for b in BASES:
        rules += [{"record": NIH_GROUP_REDUCTION[b], "expr": query.group_reduction(b)},
                  {"record": NIH_GROUP_STDERR[b], "expr": query.group_stderr(b)},
                  {"record": NIH_GROUP_WEIGHT[b], "expr": query.group_weight(b)}]
    for sign, _ in BOUNDS:
        op = "+" if sign > 0 else "-"
        rules.append({"record": NIH_GROUP_BOUNDS[sign],
                      "expr": f"{NIH_GROUP_REDUCTION[nih.EQUAL_LOAD]} {op} {z} * "
                              f"{NIH_GROUP_STDERR[nih.EQUAL_LOAD]}"})
    for b in BASES:
        rules.append({"record": NIH_FLEET_BASIS[b],
                      "expr": _weighted(NIH_GROUP_REDUCTION[b], NIH_GROUP_WEIGHT[b])})
    rules.append({"record": NIH_FLEET, "expr": f"{NIH_FLEET_BASIS[nih.EQUAL_LOAD]} or on () "
                                               f"{NIH_FLEET_BASIS[nih.RAW]}"})

    def bound(b: str, sign: int) -> str:
        weight, stderr = NIH_GROUP_WEIGHT[b], NIH_GROUP_STDERR[b]
        fleet_stderr = (f"sqrt(sum(({stderr} * on (job) {weight}) ^ 2)) / "
                        f"sum({weight} and on (job) {stderr})")
        return f"({NIH_FLEET_BASIS[b]} {'+' if sign > 0 else '-'} {z} * {fleet_stderr})"

    for sign, _ in BOUNDS:
        rules.append({"record": NIH_FLEET_BOUNDS[sign],
                      "expr": f"{bound(nih.EQUAL_LOAD, sign)} or on () {bound(nih.RAW, sign)}"})
    return {"name": NIH_GROUP, "rules": rules}


def _with_instance_labels(expr: str) -> str:
    info = f"topk by ({TARGET}) (1, {m.INSTANCE_INFO})"
    return f"({expr}) * on ({TARGET}) group_left ({INSTANCE_LABELS}) {info}"


def _quantile_rules(source: str, record: str, by: str) -> list[dict]:
    return [{"record": record, "expr": f"histogram_quantile({q}, sum by ({by}, le) ({source}))",
             "labels": {"quantile": str(q)}} for q in QUANTILES]


def recording_rules() -> dict:
    device = [
        {"record": DEVICE_EXCEEDED_SHARE, "expr": f"rate({m.EXCEEDED_SECONDS}[{WINDOW}])"},
        {"record": DEVICE_EXCEEDED_ANY,
         "expr": _with_instance_labels(f"rate({m.EXCEEDED_INTERVALS}[{WINDOW}])")},
        {"record": DEVICE_LATENCY_P99,
         "expr": f"histogram_quantile(0.99, sum by ({DEVICE_KEY}, op, le) "
                 f"(rate({m.LATENCY}_bucket[{WINDOW}])))"},
    ]
    instance = [
        {"record": record,
         "expr": _with_instance_labels(f"sum by ({TARGET}) (rate({metric}[{WINDOW}]))")}
        for metric, record in INSTANCE_RATES.items()
    ]
    instance.append({
        "record": INSTANCE_LATENCY_BUCKETS,
        "expr": _with_instance_labels(
            f"sum by ({TARGET}, op, le) (rate({m.LATENCY}_bucket[{WINDOW}]))"),
    })
    instance += _quantile_rules(INSTANCE_LATENCY_BUCKETS, INSTANCE_LATENCY_QUANTILE,
                                f"{TARGET}, op, {INSTANCE_LABELS}")
    by_type = "instance_type, family, arch"
    fleet = [
        {"record": TYPE_LATENCY_BUCKETS,
         "expr": f"sum by ({by_type}, op, le) ({INSTANCE_LATENCY_BUCKETS})"},
        {"record": TYPE_EXCEEDED_ANY,
         "expr": f"sum by ({by_type}) ({INSTANCE_RATES[m.EXCEEDED_INTERVALS]})"},
    ]
    fleet += _quantile_rules(TYPE_LATENCY_BUCKETS, TYPE_LATENCY_QUANTILE, f"{by_type}, op")
    # Rules in a group run in order, so the per-type rules read this round's per-instance ones.
    return {"groups": [
        {"name": "nitrometer-device", "rules": device},
        {"name": "nitrometer-fleet", "rules": instance + fleet},
        nih_rules(),
        headroom_recording_group(),
    ]}


def _per_second(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}[{WINDOW}]))"


def _limit(gauge: str, by: str, selector: str = "") -> str:
    """The limit gauge per `by`; a limit of 0 (unknown) gives no ratio rather than +Inf."""
    series = f"{gauge}{{{selector}}}" if selector else gauge
    return f"max by ({by}) ({series} > 0)"


def headroom_recording_group() -> dict:
    """How close each volume, and each instance per kind and op, runs to its limits."""
    volume = {
        "iops": ((m.READ_OPS, m.WRITE_OPS), m.VOLUME_IOPS_LIMIT),
        "throughput": ((m.READ_BYTES, m.WRITE_BYTES), m.VOLUME_THROUGHPUT_LIMIT),
    }
    rules = []
    for limit, (counters, gauge) in volume.items():
        demand = " + ".join(_per_second(counter, DEVICE_KEY) for counter in counters)
        rules.append({"record": VOLUME_UTILISATION,
                      "expr": f"({demand}) / on ({DEVICE_KEY}) {_limit(gauge, DEVICE_KEY)}",
                      "labels": {"limit": limit}})
    by_kind = f"{TARGET}, kind"
    instance = {
        "iops": ({"read": m.READ_OPS, "write": m.WRITE_OPS}, m.INSTANCE_IOPS_LIMIT),
        "throughput": ({"read": m.READ_BYTES, "write": m.WRITE_BYTES},
                       m.INSTANCE_THROUGHPUT_LIMIT),
    }
    for limit, (counters, gauge) in instance.items():
        for op, counter in counters.items():
            selector = f'op="{op}"'
            rules.append({"record": INSTANCE_UTILISATION,
                          "expr": f"{_per_second(counter, by_kind)} / on ({by_kind}) "
                                  f"{_limit(gauge, by_kind, selector)}",
                          "labels": {"op": op, "limit": limit}})
        # A limit for reads and writes together (the instance's EBS limits): op="total".
        both = " + ".join(_per_second(counter, by_kind) for counter in counters.values())
        total = _limit(gauge, by_kind, 'op="total"')
        rules.append({"record": INSTANCE_UTILISATION,
                      "expr": f"({both}) / on ({by_kind}) {total}",
                      "labels": {"op": "total", "limit": limit}})
    return {"name": "nitrometer-headroom", "rules": rules}


def alerting_rules(p99_threshold: float = P99_THRESHOLD_SECONDS,
                   exceeded_share: float = EXCEEDED_SHARE) -> dict:
    # Targets that were nitrometer agents recently: up==0 alone cannot tell them from others.
    agents = f"max by ({TARGET}) (max_over_time({m.BUILD_INFO}[{AGENT_LOOKBACK}]))"
    rules = [
        {
            "alert": "NitrometerLimitExceeded",
            "expr": f"{DEVICE_EXCEEDED_SHARE} > {exceeded_share:g}",
            "for": "1m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.device }} on {{ $labels.instance }} over its "
                           "{{ $labels.scope }} {{ $labels.limit }} limit most of 5 minutes",
                "description": "EC2 throttled this device {{ $value | humanizePercentage }} "
                               "of the time over the last 5 minutes: demand is above the "
                               "provisioned {{ $labels.scope }} {{ $labels.limit }}.",
            },
        },
        {
            "alert": "NitrometerHighP99Latency",
            "expr": f"{DEVICE_LATENCY_P99} > {p99_threshold:g}",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.device }} on {{ $labels.instance }}: p99 "
                           "{{ $labels.op }} latency {{ $value | humanizeDuration }}",
                "description": f"p99 {{{{ $labels.op }}}} latency has been above "
                               f"{p99_threshold:g}s for 5 minutes.",
            },
        },
        {
            "alert": "NitrometerAgentDown",
            "expr": f"up == 0 and on ({TARGET}) {agents}",
            "for": "2m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "nitrometer on {{ $labels.instance }} stopped reporting",
                "description": "Prometheus cannot scrape an agent that reported within the "
                               "last hour; its devices are unwatched.",
            },
        },
        {
            "alert": "NitrometerAgentNotPolling",
            "expr": f"rate({m.POLL_DURATION}_count[{WINDOW}]) == 0",
            "for": "2m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "nitrometer on {{ $labels.instance }} serves metrics but "
                           "stopped polling its devices",
                "description": "No poll completed in 5 minutes: the numbers are stale.",
            },
        },
    ]
    return {"groups": [{"name": "nitrometer-alerts", "rules": rules},
                       headroom_alerting_group()]}


def headroom_alerting_group(share: float = NEAR_LIMIT_SHARE) -> dict:
    """Warnings while there is still headroom: sustained demand close to a limit."""
    near = f"{share:g}"
    percent = f"{share:.0%}"
    rules = [
        {
            "alert": "NitrometerVolumeNearLimit",
            "expr": f"{VOLUME_UTILISATION} > {near}",
            "for": f"{NEAR_LIMIT_MINUTES}m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.device }} on {{ $labels.instance }} at "
                           "{{ $value | humanizePercentage }} of its provisioned "
                           "{{ $labels.limit }}",
                "description": f"The volume has run above {percent} of its provisioned "
                               f"{{{{ $labels.limit }}}} for {NEAR_LIMIT_MINUTES} minutes: "
                               "raise the provisioned "
                               "{{ $labels.limit }} before EC2 starts holding IO back.",
            },
        },
        {
            "alert": "NitrometerInstanceNearLimit",
            "expr": f"{INSTANCE_UTILISATION} > {near}",
            "for": f"{NEAR_LIMIT_MINUTES}m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.instance }} at {{ $value | humanizePercentage }} of "
                           "its instance {{ $labels.kind }} {{ $labels.op }} "
                           "{{ $labels.limit }} limit",
                "description": f"All {{{{ $labels.kind }}}} devices of this instance "
                               f"together have run above {percent} of the instance's "
                               f"{{{{ $labels.op }}}} {{{{ $labels.limit }}}} limit for "
                               f"{NEAR_LIMIT_MINUTES} minutes: a larger instance type "
                               "raises it.",
            },
        },
    ]
    return {"name": "nitrometer-headroom-alerts", "rules": rules}


def to_yaml(rules: dict) -> str:
    return yaml.safe_dump(rules, sort_keys=False, width=120)
