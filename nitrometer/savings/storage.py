"""Does the Graviton target hold the storage load the fleet measured?

Per host, the agent's peak gauges (highest 1-second IOPS and throughput over the agent's
peak window, per device and op) are taken at their maximum over the range and summed over
the host's devices of one kind: a conservative peak, as devices need not peak together.
Instance-store peaks are held against the target's instance-store limits (read and write
IOPS, throughput), EBS peaks against the target's EBS-optimized instance limits (IOPS and
throughput of reads and writes together), from nitrometer/data/storage_limits.csv.
"""

from __future__ import annotations

from collections import defaultdict

from nitrometer.ec2 import ebs_instance_limits, instance_store_limits


def _check(scope: str, metric: str, peak: float, limit: float | None) -> dict:
    if limit is None:
        return {"scope": scope, "metric": metric, "peak": peak, "limit": None,
                "headroom_pct": None, "fits": None}
    headroom = 100 * (limit - peak) / limit if limit else -100.0
    return {"scope": scope, "metric": metric, "peak": peak, "limit": limit,
            "headroom_pct": headroom, "fits": peak <= limit}


def host_checks(target: str, peaks: dict[tuple[str, str, str], float]) -> list[dict]:
    """peaks: (kind, op, iops|throughput) -> the host's summed peak."""
    checks = []
    kinds = {kind for kind, _, _ in peaks}
    if "instance_store" in kinds:
        store = instance_store_limits(target)
        limits = store[1] if store else None
        checks += [
            _check("instance_store", "read_iops", peaks.get(("instance_store", "read", "iops"),
                                                            0.0),
                   limits.read_iops if limits else None),
            _check("instance_store", "write_iops",
                   peaks.get(("instance_store", "write", "iops"), 0.0),
                   limits.write_iops if limits else None),
            _check("instance_store", "throughput_bytes_per_second",
                   sum(v for (k, _, m), v in peaks.items()
                       if k == "instance_store" and m == "throughput"),
                   limits.throughput if limits else None)]
    if "ebs" in kinds:
        limits = ebs_instance_limits(target)
        checks += [
            _check("ebs", "iops", sum(v for (k, _, m), v in peaks.items()
                                      if k == "ebs" and m == "iops"),
                   limits.read_iops if limits else None),
            _check("ebs", "throughput_bytes_per_second",
                   sum(v for (k, _, m), v in peaks.items() if k == "ebs" and m == "throughput"),
                   limits.throughput if limits else None)]
    return checks


def storage_fit(host_peaks: dict[tuple[str, str], dict], host_types: dict[tuple[str, str], str],
                targets: dict[str, str]) -> list[dict]:
    """One row per x86 instance type with a target: its hosts' worst peaks against the
    target's limits. host_peaks: host -> peaks; host_types: host -> type;
    targets: type -> Graviton target."""
    worst: dict[str, dict] = {}
    hosts: dict[str, int] = defaultdict(int)
    for host, peaks in host_peaks.items():
        source = host_types.get(host)
        if source not in targets:
            continue
        hosts[source] += 1
        for check in host_checks(targets[source], peaks):
            key = (check["scope"], check["metric"])
            rows = worst.setdefault(source, {})
            if key not in rows or check["peak"] > rows[key]["peak"]:
                rows[key] = check
    result = []
    for source in sorted(worst):
        checks = list(worst[source].values())
        verdicts = [c["fits"] for c in checks if c["fits"] is not None]
        result.append({"instance_type": source, "target_type": targets[source],
                       "hosts": hosts[source],
                       "fits": (all(verdicts) if verdicts else None), "checks": checks})
    return result
